/*
 * teardown: can a program be interposed at all?  ELF inspection for
 * `teardown doctor` and for the warning `teardown run` prints.
 *
 * Pure: the file is read with open() and pread(), never mapped, loaded or
 * run, and without libelf.  Every offset, size and count in the file is
 * treated as hostile: the reader is fuzzed.
 */
#ifndef TEARDOWN_CLI_ELFINFO_H
#define TEARDOWN_CLI_ELFINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* At most this many DT_NEEDED names are kept; the rest are counted. */
#define TD_ELF_MAX_NEEDED 32
/* Longest path or library name kept (longer ones are cut). */
#define TD_ELF_NAME_MAX 256

enum td_elf_kind {
	TD_ELF_DYNAMIC = 0, /* has PT_INTERP: the loader runs, LD_PRELOAD applies */
	TD_ELF_STATIC,	    /* no PT_INTERP, not position-independent */
	TD_ELF_STATIC_PIE,  /* ET_DYN without PT_INTERP, flagged DF_1_PIE */
	TD_ELF_LIBRARY,	    /* ET_DYN without PT_INTERP and not a PIE */
	TD_ELF_OBJECT,	    /* ET_REL, ET_CORE...: not something one runs */
	TD_ELF_NOT_ELF,
	TD_ELF_SCRIPT, /* starts with "#!" */
};

struct td_elf_info {
	enum td_elf_kind kind;
	/* kind TD_ELF_NOT_ELF for a file that starts like an ELF but is cut
	 * short or inconsistent; damage says what is wrong */
	bool damaged;
	char damage[96];

	/* ELF header (zero unless kind is an ELF kind) */
	int elf_class;	 /* ELFCLASS32 / ELFCLASS64 */
	int elf_data;	 /* ELFDATA2LSB / ELFDATA2MSB */
	int machine;	 /* e_machine */
	int type;	 /* e_type */
	bool foreign;	 /* class or machine differ from this build's */
	bool has_interp; /* PT_INTERP present */
	char interp[TD_ELF_NAME_MAX];

	/* dynamic section */
	bool has_dynamic;
	bool pie; /* DF_1_PIE in DT_FLAGS_1 */
	char soname[TD_ELF_NAME_MAX];
	char needed[TD_ELF_MAX_NEEDED][TD_ELF_NAME_MAX];
	int n_needed;	     /* entries in needed[] */
	int n_needed_total;  /* DT_NEEDED entries seen, kept or not */
	bool needs_libc;     /* "libc.so.6" is a DT_NEEDED entry */
	/* Highest GLIBC_x.y[.z] in .gnu.version_r (0.0.0: none). */
	int glibc_major, glibc_minor, glibc_patch;

	/* Go: .go.buildinfo, a "Go" note, or the build-info magic. */
	bool go;

	/* "#!" scripts: the interpreter and its single optional argument. */
	char script_interp[TD_ELF_NAME_MAX];
	char script_arg[TD_ELF_NAME_MAX];

	/* the file (td_elf_inspect only; td_elf_inspect_mem leaves zeros) */
	bool setuid, setgid;
	bool caps; /* a security.capability extended attribute is present */
	uid_t uid;
	gid_t gid;

	/*
	 * Set by the caller, never by the inspector: for a script, what its
	 * interpreter is, so that the verdict can speak for what really
	 * runs.  NULL otherwise.
	 */
	const struct td_elf_info *interp_info;
};

/* At most this many dynamic symbols are read from one file. */
#define TD_ELF_MAX_SYMS (1u << 18)
/* A dynamic string table larger than this is not read (names unknown). */
#define TD_ELF_MAX_STRTAB (16u << 20)
/* At most this many DT_NEEDED names are kept in struct td_elf_dyn. */
#define TD_ELF_MAX_DYN_NEEDED 4096

/*
 * One entry of the dynamic symbol table (.dynsym), as the loader reads it.
 * Strings point into the owning td_elf_dyn's private copy of the string
 * table; they are the file's raw bytes (make them printable to show them).
 */
struct td_elf_sym {
	const char *name;	  /* "" when the string table cannot be read */
	/*
	 * The symbol version from .gnu.version, or NULL for none (local,
	 * global base, or an index the file does not define).  For a
	 * version needed from another file (.gnu.version_r), version_file
	 * names that file: an undefined symbol it must come from, or, for a
	 * defined one, a copy the program holds of that file's object (a
	 * copy relocation).  NULL for the file's own versions.
	 */
	const char *version;
	const char *version_file;
	unsigned char bind, type, vis; /* STB_*, STT_*, STV_* */
	bool hidden;		       /* versym bit 15: not the default version */
	uint16_t ver_index;	       /* the .gnu.version entry, bit 15 cleared */
	uint16_t shndx;
	uint64_t value;
};

/* The dynamic symbols and the loader's search inputs of one file. */
struct td_elf_dyn {
	struct td_elf_sym *syms;
	size_t n_syms;
	bool syms_cut;	  /* more than TD_ELF_MAX_SYMS: the rest were not read */
	bool has_versym;  /* a .gnu.version table was read */
	const char **needed; /* every DT_NEEDED, in order (up to TD_ELF_MAX_DYN_NEEDED) */
	size_t n_needed;
	const char *runpath; /* DT_RUNPATH, or NULL */
	const char *rpath;   /* DT_RPATH, or NULL */
	bool nodeflib;	     /* DF_1_NODEFLIB: no ld.so.cache, no default directories */
	/* private */
	char *strtab;
	size_t strtab_size;
	const char **vers; /* version index -> name; vfiles -> file or NULL */
	const char **vfiles;
	size_t n_vers;
};

/*
 * Inspect the file at path.  Returns 0 with *out filled (also for files
 * that are not ELF: kind TD_ELF_NOT_ELF), or a negative errno when the
 * file cannot be opened or read (-EISDIR for a directory, -EINVAL for a
 * device or FIFO, which are never read).
 */
int td_elf_inspect(const char *path, struct td_elf_info *out);

/* The same from bytes in memory (no file mode, owner or capabilities). */
int td_elf_inspect_mem(const void *data, size_t len, struct td_elf_info *out);

/*
 * td_elf_inspect, and also the dynamic symbols, every DT_NEEDED, DT_RUNPATH
 * and DT_RPATH into *dyn (zeroed first; release it with td_elf_dyn_free
 * whatever the result).  The symbol count comes from the .dynsym section
 * header, else DT_HASH, else a walk of DT_GNU_HASH; a file whose tables
 * cannot be read has no symbols.  Returns as td_elf_inspect, or -ENOMEM.
 */
int td_elf_dynamic(const char *path, struct td_elf_info *out, struct td_elf_dyn *dyn);
int td_elf_dynamic_mem(const void *data, size_t len, struct td_elf_info *out,
		       struct td_elf_dyn *dyn);
void td_elf_dyn_free(struct td_elf_dyn *dyn);

/*
 * Can the loader bind a reference to this symbol: defined (not
 * SHN_UNDEF), global, weak or unique, of a type it binds (no section or
 * file symbols), with a value (or TLS or absolute), and not hidden.
 */
bool td_elf_sym_exported(const struct td_elf_sym *sym);

/*
 * Would the loader take def (from a file with .gnu.version when
 * has_versym) for a reference to name at version want (NULL: an
 * unversioned reference)?  glibc's rule: a file without versions matches
 * any reference; else the version names must be equal, or the
 * definition must be unversioned and not hidden.  An unversioned
 * reference takes the base or oldest version, or any that is not hidden.
 */
bool td_elf_sym_matches(const struct td_elf_sym *def, bool has_versym, const char *want);

/*
 * Can teardown act on this program, and why not: one plain sentence into
 * buf (cut to cap), returned.  *ok is 1 when LD_PRELOAD reaches the
 * program and its socket calls go through libc, else 0.
 */
const char *td_elf_verdict(const struct td_elf_info *info, char *buf,
			   size_t cap, int *ok);

/*
 * The short name of the verdict for machine-readable output: "dynamic",
 * "static", "static-pie", "go", "script", "setuid", "not-elf",
 * "foreign-arch", "library" or "object".
 */
const char *td_elf_kind_name(const struct td_elf_info *info);

/* "x86-64", "i386", "aarch64"... for e_machine; NULL when unknown. */
const char *td_elf_machine_name(int machine);

/*
 * Would the loader run this program in secure-execution mode if the
 * calling process exec'd it now?  The kernel sets AT_SECURE when the
 * effective ids after exec differ from the real ids before, or when file
 * capabilities add privileges, so root running a set-user-ID-root program
 * gets no secure mode while anyone else does.
 */
bool td_elf_secure_for_caller(const struct td_elf_info *info);

/*
 * Find a command the way execvp() and `which` do: each PATH entry (the
 * system default when PATH is unset; an empty entry means the current
 * directory) is tried for an executable regular file.  A name with a
 * slash is taken as is when it exists, executable or not, so that any
 * file can be inspected.  Returns 0 with the path in buf, -ENOENT,
 * -EACCES (found in PATH, not executable) or -ENAMETOOLONG.
 */
int td_elf_which(const char *name, char *buf, size_t cap);

#endif
