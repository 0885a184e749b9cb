/*
 * teardown: ELF inspection for `teardown doctor`.
 *
 * LD_PRELOAD only works where the dynamic loader runs, the program's
 * socket calls go through libc, and the loader is not in secure mode.
 * Everything needed to tell is in the file's headers, so the file is read
 * (never loaded or run) and every offset, size and count in it is checked
 * against the file before use: the input may be anything.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "elfinfo.h"

/* Caps on what a hostile file can make us read or loop over. */
#define TD__MAX_PHNUM 2048	    /* the kernel refuses more than 64 KiB of them */
#define TD__MAX_SHNUM 16384
#define TD__MAX_DYN 8192	    /* entries of PT_DYNAMIC read */
#define TD__MAX_LOADS 64	    /* PT_LOAD kept for address mapping */
#define TD__MAX_NOTES_BYTES 65536   /* per note segment or section */
#define TD__MAX_VERNEED 256	    /* .gnu.version_r files */
#define TD__MAX_VERNAUX 1024	    /* .gnu.version_r versions, in all */
#define TD__GO_SCAN_BYTES (8u << 20) /* per writable segment */
#define TD__GO_SCAN_CHUNK 65536
#define TD__GO_SCAN_SEGMENTS 4

static const char td__go_magic[] = "\xff Go buildinf:";
#define TD__GO_MAGIC_LEN 14

/* Where the bytes come from: a file descriptor or a buffer. */
struct td__src {
	int fd; /* -1 for memory */
	const unsigned char *mem;
	uint64_t size;
	int le;	  /* little-endian fields */
	int is64; /* ELFCLASS64 */
};

struct td__seg {
	uint64_t vaddr, off, filesz;
};

/* A writable PT_LOAD segment, where Go's build-info magic may sit. */
struct td__wseg {
	uint64_t off, filesz;
};

/* What the program headers said. */
struct td__phdrs {
	struct td__seg loads[TD__MAX_LOADS];
	int n_loads;
	struct td__wseg wsegs[TD__GO_SCAN_SEGMENTS];
	int n_wsegs;
	uint64_t dyn_off, dyn_size;
	int has_dyn;
};

/*
 * Read len bytes at off, all or nothing.  Anything past the end of the
 * file (or an offset that would overflow) is -ERANGE, so that callers can
 * treat a damaged field like an absent one.
 */
static int td__read(const struct td__src *s, uint64_t off, void *buf, size_t len)
{
	unsigned char *p = buf;

	if (off > s->size || len > s->size - off)
		return -ERANGE;
	if (s->mem != NULL) {
		memcpy(buf, s->mem + off, len);
		return 0;
	}
	while (len > 0) {
		ssize_t n = pread(s->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static uint16_t td__u16(const struct td__src *s, const unsigned char *p)
{
	return s->le ? (uint16_t)(p[0] | p[1] << 8) : (uint16_t)(p[1] | p[0] << 8);
}

static uint32_t td__u32(const struct td__src *s, const unsigned char *p)
{
	if (s->le)
		return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		       (uint32_t)p[3] << 24;
	return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[0] << 24;
}

static uint64_t td__u64(const struct td__src *s, const unsigned char *p)
{
	uint64_t lo = td__u32(s, s->le ? p : p + 4);
	uint64_t hi = td__u32(s, s->le ? p + 4 : p);

	return hi << 32 | lo;
}

/* An address-sized field: 4 bytes in ELFCLASS32, 8 in ELFCLASS64. */
static uint64_t td__addr(const struct td__src *s, const unsigned char *p)
{
	return s->is64 ? td__u64(s, p) : td__u32(s, p);
}

/*
 * Copy a name found in the file for display: cut at cap - 1, and any byte
 * that is not printable ASCII becomes '?', so that a hostile file cannot
 * put escape sequences on the operator's terminal or break JSON.
 */
static void td__copy_name(char *dst, size_t cap, const char *src, size_t n)
{
	size_t i;

	if (cap == 0)
		return;
	for (i = 0; i < n && i + 1 < cap && src[i] != '\0'; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/*
 * The NUL-terminated string at index idx of a string table at tab_off of
 * tab_size bytes (0: unknown, bounded by the file).  Returns 0, or -ERANGE
 * when idx lies outside the table or the file.
 */
static int td__strtab_get(const struct td__src *s, uint64_t tab_off, uint64_t tab_size,
			  uint64_t idx, char *out, size_t cap)
{
	char raw[TD_ELF_NAME_MAX];
	uint64_t avail;
	size_t want;

	out[0] = '\0';
	if (tab_off > s->size)
		return -ERANGE;
	avail = s->size - tab_off;
	if (tab_size != 0 && tab_size < avail)
		avail = tab_size;
	if (idx >= avail)
		return -ERANGE;
	avail -= idx;
	want = avail < sizeof(raw) - 1 ? (size_t)avail : sizeof(raw) - 1;
	if (td__read(s, tab_off + idx, raw, want) != 0)
		return -ERANGE;
	raw[want] = '\0';
	td__copy_name(out, cap, raw, want);
	return 0;
}

/* A virtual address in the file, through the PT_LOAD segment holding it. */
static int td__vaddr_to_off(const struct td__src *s, const struct td__phdrs *ph,
			    uint64_t vaddr, uint64_t *off)
{
	for (int i = 0; i < ph->n_loads; i++) {
		const struct td__seg *g = &ph->loads[i];

		if (vaddr >= g->vaddr && vaddr - g->vaddr < g->filesz) {
			uint64_t o = g->off + (vaddr - g->vaddr);

			if (o < g->off || o >= s->size)
				return -ERANGE;
			*off = o;
			return 0;
		}
	}
	return -ERANGE;
}

/* Notes: the Go linker writes a build-ID note named "Go" into every binary. */
static void td__scan_notes(const struct td__src *s, uint64_t off, uint64_t size,
			   uint64_t align, struct td_elf_info *out)
{
	unsigned char *buf;
	size_t len, pos = 0;

	if (off >= s->size || size == 0)
		return;
	if (size > s->size - off)
		size = s->size - off;
	len = size > TD__MAX_NOTES_BYTES ? TD__MAX_NOTES_BYTES : (size_t)size;
	buf = malloc(len);
	if (buf == NULL)
		return;
	if (td__read(s, off, buf, len) != 0) {
		free(buf);
		return;
	}
	/* GNU notes in 8-aligned segments pad to 8; everything else to 4. */
	align = align == 8 ? 8 : 4;
	while (len - pos >= 12) {
		uint32_t namesz = td__u32(s, buf + pos);
		uint32_t descsz = td__u32(s, buf + pos + 4);
		size_t name_pad, desc_pad;

		pos += 12;
		name_pad = ((size_t)namesz + align - 1) & ~(size_t)(align - 1);
		desc_pad = ((size_t)descsz + align - 1) & ~(size_t)(align - 1);
		if (name_pad < namesz || name_pad > len - pos)
			break;
		/* Go's linker writes the name "Go\0\0" with namesz 4 */
		if ((namesz == 3 || namesz == 4) && memcmp(buf + pos, "Go\0", 3) == 0 &&
		    (namesz == 3 || buf[pos + 3] == '\0'))
			out->go = true;
		pos += name_pad;
		if (desc_pad < descsz || desc_pad > len - pos)
			break;
		pos += desc_pad;
	}
	free(buf);
}

/*
 * Go writes "\xff Go buildinf:" at the start of .go.buildinfo, 16-byte
 * aligned, followed by the pointer size.  Looking for it in writable
 * segments finds Go binaries whose section headers were stripped; asking
 * for the alignment and a pointer size keeps a C program that merely
 * contains the string (as this file does, read-only) from matching.
 */
static bool td__go_magic_in(const struct td__src *s, const struct td__wseg *w, int n)
{
	unsigned char *buf = malloc(TD__GO_SCAN_CHUNK);
	bool found = false;

	if (buf == NULL)
		return false;
	for (int i = 0; i < n && !found; i++) {
		uint64_t size = w[i].filesz, done;
		/* aligned in the address space, and so in the file: p_offset
		 * and p_vaddr agree modulo the page size */
		uint64_t skip = (16 - (w[i].off & 15)) & 15;

		if (w[i].off >= s->size)
			continue;
		if (size > s->size - w[i].off)
			size = s->size - w[i].off;
		if (size > TD__GO_SCAN_BYTES)
			size = TD__GO_SCAN_BYTES;
		/* chunks are multiples of 16, so no candidate straddles two */
		for (done = skip; done + 16 <= size && !found; done += TD__GO_SCAN_CHUNK) {
			size_t len = size - done > TD__GO_SCAN_CHUNK ? TD__GO_SCAN_CHUNK
								     : (size_t)(size - done);

			if (td__read(s, w[i].off + done, buf, len) != 0)
				break;
			for (size_t p = 0; p + 16 <= len; p += 16) {
				unsigned char ptrsize = buf[p + TD__GO_MAGIC_LEN];

				if (memcmp(buf + p, td__go_magic, TD__GO_MAGIC_LEN) == 0 &&
				    (ptrsize == 4 || ptrsize == 8)) {
					found = true;
					break;
				}
			}
		}
	}
	free(buf);
	return found;
}

/* Record that the file is not a usable ELF, and why. */
static int td__damaged(struct td_elf_info *out, const char *why)
{
	out->kind = TD_ELF_NOT_ELF;
	out->damaged = true;
	snprintf(out->damage, sizeof(out->damage), "%s", why);
	return 0;
}

/*
 * Walk the program headers: PT_INTERP, PT_DYNAMIC, the PT_LOAD segments
 * (kept to turn addresses into file offsets), notes, and the writable
 * segments.
 */
static int td__read_phdrs(const struct td__src *s, uint64_t phoff, unsigned phnum,
			  struct td__phdrs *ph, struct td_elf_info *out)
{
	size_t ent = s->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	unsigned char *tab;

	tab = malloc((size_t)phnum * ent);
	if (tab == NULL)
		return -ENOMEM;
	if (td__read(s, phoff, tab, (size_t)phnum * ent) != 0) {
		free(tab);
		return td__damaged(out, "the program headers lie past the end of the file");
	}
	for (unsigned i = 0; i < phnum; i++) {
		const unsigned char *p = tab + (size_t)i * ent;
		uint32_t type = td__u32(s, p), flags;
		uint64_t off, vaddr, filesz, align;

		if (s->is64) {
			flags = td__u32(s, p + 4);
			off = td__u64(s, p + 8);
			vaddr = td__u64(s, p + 16);
			filesz = td__u64(s, p + 32);
			align = td__u64(s, p + 48);
		} else {
			off = td__u32(s, p + 4);
			vaddr = td__u32(s, p + 8);
			filesz = td__u32(s, p + 16);
			flags = td__u32(s, p + 24);
			align = td__u32(s, p + 28);
		}
		switch (type) {
		case PT_INTERP: {
			char raw[TD_ELF_NAME_MAX];
			size_t n = filesz < sizeof(raw) ? (size_t)filesz : sizeof(raw);

			if (n == 0 || td__read(s, off, raw, n) != 0) {
				free(tab);
				return td__damaged(out, "the interpreter path lies past the end of the file");
			}
			out->has_interp = true;
			td__copy_name(out->interp, sizeof(out->interp), raw, n);
			break;
		}
		case PT_DYNAMIC:
			if (!ph->has_dyn) {
				ph->has_dyn = 1;
				ph->dyn_off = off;
				ph->dyn_size = filesz;
			}
			break;
		case PT_LOAD:
			if (ph->n_loads < TD__MAX_LOADS) {
				ph->loads[ph->n_loads].vaddr = vaddr;
				ph->loads[ph->n_loads].off = off;
				ph->loads[ph->n_loads].filesz = filesz;
				ph->n_loads++;
			}
			if ((flags & PF_W) && ph->n_wsegs < TD__GO_SCAN_SEGMENTS) {
				ph->wsegs[ph->n_wsegs].off = off;
				ph->wsegs[ph->n_wsegs].filesz = filesz;
				ph->n_wsegs++;
			}
			break;
		case PT_NOTE:
			td__scan_notes(s, off, filesz, align, out);
			break;
		default:
			break;
		}
	}
	free(tab);
	return 0;
}

/* Parse "GLIBC_2.34" or "GLIBC_2.3.4"; keep it when higher than seen. */
static void td__note_glibc(struct td_elf_info *out, const char *v)
{
	int part[3] = {0, 0, 0}, n = 0;
	const char *c;

	if (strncmp(v, "GLIBC_", 6) != 0)
		return;
	c = v + 6;
	while (n < 3) {
		long x = 0;

		if (*c < '0' || *c > '9')
			return; /* GLIBC_PRIVATE, GLIBC_ABI_DT_RELR... */
		while (*c >= '0' && *c <= '9' && x < 100000)
			x = x * 10 + (*c++ - '0');
		part[n++] = (int)x;
		if (*c == '\0')
			break;
		if (*c++ != '.')
			return;
	}
	if (*c != '\0')
		return;
	if (part[0] > out->glibc_major ||
	    (part[0] == out->glibc_major &&
	     (part[1] > out->glibc_minor ||
	      (part[1] == out->glibc_minor && part[2] > out->glibc_patch)))) {
		out->glibc_major = part[0];
		out->glibc_minor = part[1];
		out->glibc_patch = part[2];
	}
}

/*
 * .gnu.version_r: for each library, the symbol versions the program
 * needs.  Only the highest GLIBC_x.y matters here: a preloaded library
 * asking for a newer glibc than the host has stops every program.
 */
static void td__read_verneed(const struct td__src *s, uint64_t off, uint64_t num,
			     uint64_t str_off, uint64_t str_size,
			     struct td_elf_info *out)
{
	unsigned total_aux = 0;

	if (num > TD__MAX_VERNEED)
		num = TD__MAX_VERNEED;
	for (uint64_t i = 0; i < num; i++) {
		unsigned char vn[16];
		uint16_t cnt;
		uint32_t aux, next;
		uint64_t a;

		if (td__read(s, off, vn, sizeof(vn)) != 0)
			return;
		cnt = td__u16(s, vn + 2);
		aux = td__u32(s, vn + 8);
		next = td__u32(s, vn + 12);
		a = off + aux;
		for (unsigned j = 0; j < cnt && total_aux < TD__MAX_VERNAUX; j++, total_aux++) {
			unsigned char va[16];
			char name[64];
			uint32_t vna_name, vna_next;

			if (a < off || td__read(s, a, va, sizeof(va)) != 0)
				break;
			vna_name = td__u32(s, va + 8);
			vna_next = td__u32(s, va + 12);
			if (td__strtab_get(s, str_off, str_size, vna_name, name, sizeof(name)) == 0)
				td__note_glibc(out, name);
			if (vna_next == 0)
				break;
			a += vna_next;
		}
		if (next == 0 || off + next < off)
			return;
		off += next;
	}
}

/* Add one DT_NEEDED name. */
static void td__add_needed(struct td_elf_info *out, const char *name)
{
	out->n_needed_total++;
	if (strcmp(name, "libc.so.6") == 0)
		out->needs_libc = true;
	if (out->n_needed < TD_ELF_MAX_NEEDED) {
		snprintf(out->needed[out->n_needed], sizeof(out->needed[0]), "%s", name);
		out->n_needed++;
	}
}

/* An address-sized field at p + off (sh_entsize and the like). */
static uint64_t td__u64_field(const struct td__src *s, const unsigned char *p, size_t off)
{
	return td__addr(s, p + off);
}

/* What the section headers said. */
struct td__shinfo {
	uint64_t dynstr_off, dynstr_size;
	int have_dynstr;
	uint64_t dynsym_off, dynsym_size; /* SHT_DYNSYM of the right entry size */
	int have_dynsym;
	int have_names; /* the section names could be read */
};

/*
 * The section headers, when present: they name the string table of the
 * dynamic section when the program headers cannot (a damaged or unusual
 * layout), and they hold the section names, where ".go.buildinfo" is the
 * surest sign of a Go binary.
 */
static void td__read_shdrs(const struct td__src *s, uint64_t shoff, unsigned shnum,
			   unsigned shentsize, unsigned shstrndx,
			   struct td__shinfo *si, struct td_elf_info *out)
{
	size_t ent = s->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
	unsigned char *tab;
	uint64_t names_off = 0, names_size = 0;
	int have_names = 0;

	if (shoff == 0 || shentsize != ent)
		return;
	if (shnum == 0) {
		/* More than SHN_LORESERVE sections: the count is in section 0. */
		unsigned char s0[sizeof(Elf64_Shdr)];

		if (td__read(s, shoff, s0, ent) != 0)
			return;
		shnum = (unsigned)(s->is64 ? td__u64(s, s0 + 32) : td__u32(s, s0 + 20));
		if (shstrndx == SHN_XINDEX)
			shstrndx = td__u32(s, s0 + (s->is64 ? 40 : 24));
	}
	if (shnum == 0 || shnum > TD__MAX_SHNUM)
		return;
	tab = malloc((size_t)shnum * ent);
	if (tab == NULL)
		return;
	if (td__read(s, shoff, tab, (size_t)shnum * ent) != 0) {
		free(tab);
		return;
	}
#define TD__SH(i) (tab + (size_t)(i) * ent)
#define TD__SH_TYPE(p) td__u32(s, (p) + 4)
#define TD__SH_OFF(p) (s->is64 ? td__u64(s, (p) + 24) : td__u32(s, (p) + 16))
#define TD__SH_SIZE(p) (s->is64 ? td__u64(s, (p) + 32) : td__u32(s, (p) + 20))
#define TD__SH_LINK(p) td__u32(s, (p) + (s->is64 ? 40 : 24))
	if (shstrndx < shnum && TD__SH_TYPE(TD__SH(shstrndx)) == SHT_STRTAB) {
		names_off = TD__SH_OFF(TD__SH(shstrndx));
		names_size = TD__SH_SIZE(TD__SH(shstrndx));
		have_names = 1;
		si->have_names = 1;
	}
	for (unsigned i = 0; i < shnum; i++) {
		const unsigned char *p = TD__SH(i);
		uint32_t type = TD__SH_TYPE(p);

		if (have_names && !out->go) {
			char name[32];

			if (td__strtab_get(s, names_off, names_size, td__u32(s, p), name,
					   sizeof(name)) == 0 &&
			    strcmp(name, ".go.buildinfo") == 0)
				out->go = true;
		}
		if (type == SHT_DYNAMIC && !si->have_dynstr) {
			uint32_t link = TD__SH_LINK(p);

			if (link < shnum && TD__SH_TYPE(TD__SH(link)) == SHT_STRTAB) {
				si->dynstr_off = TD__SH_OFF(TD__SH(link));
				si->dynstr_size = TD__SH_SIZE(TD__SH(link));
				si->have_dynstr = 1;
			}
		}
		if (type == SHT_DYNSYM && !si->have_dynsym &&
		    td__u64_field(s, p, s->is64 ? 56 : 36) == (s->is64 ? sizeof(Elf64_Sym)
								       : sizeof(Elf32_Sym))) {
			si->dynsym_off = TD__SH_OFF(p);
			si->dynsym_size = TD__SH_SIZE(p);
			si->have_dynsym = 1;
		}
		if (type == SHT_NOTE && !out->go)
			td__scan_notes(s, TD__SH_OFF(p), TD__SH_SIZE(p), 4, out);
	}
#undef TD__SH
#undef TD__SH_TYPE
#undef TD__SH_OFF
#undef TD__SH_SIZE
#undef TD__SH_LINK
	free(tab);
}

/*
 * The dynamic tags the symbol reader needs (td_elf_dynamic), as found:
 * addresses are still addresses, the string table is a file offset.
 */
struct td__dyntags {
	bool have_str;
	uint64_t str_off, str_size;
	uint64_t dyn_n; /* entries of PT_DYNAMIC before DT_NULL, read again for DT_NEEDED */
	uint64_t symtab_va, hash_va, gnu_hash_va, versym_va;
	uint64_t verdef_va, verdef_num, verneed_va, verneed_num;
	uint64_t runpath, rpath;
	bool have_symtab, have_hash, have_gnu_hash, have_versym, have_verdef, have_verneed;
	bool have_runpath, have_rpath, nodeflib;
};

/*
 * PT_DYNAMIC: DT_NEEDED, DT_SONAME, DT_FLAGS_1 and the version needs,
 * and when dt is not NULL what the symbol reader needs.
 * The strings live in DT_STRTAB, an address: mapped to a file offset
 * through PT_LOAD, or else taken from the section headers.
 */
static void td__read_dynamic(const struct td__src *s, const struct td__phdrs *ph,
			     const struct td__shinfo *si, struct td_elf_info *out,
			     struct td__dyntags *dt)
{
	size_t ent = s->is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
	uint64_t size = ph->dyn_size, n, str_va = 0, str_size = 0, str_off = 0;
	uint64_t verneed_va = 0, verneed_num = 0, soname = 0, verneed_off;
	bool have_str = false, have_soname = false, have_verneed = false;
	unsigned char *tab;

	if (ph->dyn_off >= s->size)
		return;
	if (size > s->size - ph->dyn_off)
		size = s->size - ph->dyn_off;
	n = size / ent;
	if (n > TD__MAX_DYN)
		n = TD__MAX_DYN;
	if (n == 0)
		return;
	tab = malloc((size_t)n * ent);
	if (tab == NULL)
		return;
	if (td__read(s, ph->dyn_off, tab, (size_t)n * ent) != 0) {
		free(tab);
		return;
	}
	out->has_dynamic = true;
	/* First pass: where the strings are; DT_STRTAB may follow DT_NEEDED. */
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *p = tab + i * ent;
		uint64_t tag = td__addr(s, p), val = td__addr(s, p + ent / 2);

		if (tag == DT_NULL) {
			n = i;
			break;
		}
		switch (tag) {
		case DT_STRTAB: str_va = val; have_str = true; break;
		case DT_STRSZ: str_size = val; break;
		case DT_SONAME: soname = val; have_soname = true; break;
		case DT_FLAGS_1: out->pie = (val & DF_1_PIE) != 0; break;
		case DT_VERNEED: verneed_va = val; have_verneed = true; break;
		case DT_VERNEEDNUM: verneed_num = val; break;
		default: break;
		}
		if (dt == NULL)
			continue;
		switch (tag) {
		case DT_SYMTAB: dt->symtab_va = val; dt->have_symtab = true; break;
		case DT_HASH: dt->hash_va = val; dt->have_hash = true; break;
		case DT_GNU_HASH: dt->gnu_hash_va = val; dt->have_gnu_hash = true; break;
		case DT_VERSYM: dt->versym_va = val; dt->have_versym = true; break;
		case DT_VERDEF: dt->verdef_va = val; dt->have_verdef = true; break;
		case DT_VERDEFNUM: dt->verdef_num = val; break;
		case DT_VERNEED: dt->verneed_va = val; dt->have_verneed = true; break;
		case DT_VERNEEDNUM: dt->verneed_num = val; break;
		case DT_RUNPATH: dt->runpath = val; dt->have_runpath = true; break;
		case DT_RPATH: dt->rpath = val; dt->have_rpath = true; break;
		case DT_FLAGS_1: dt->nodeflib = (val & DF_1_NODEFLIB) != 0; break;
		default: break;
		}
	}
	if (have_str && td__vaddr_to_off(s, ph, str_va, &str_off) == 0) {
		/* found through the segments */
	} else if (si->have_dynstr) {
		str_off = si->dynstr_off;
		str_size = si->dynstr_size;
		have_str = true;
	} else {
		have_str = false;
	}
	if (dt != NULL) {
		dt->have_str = have_str;
		dt->str_off = str_off;
		dt->str_size = str_size;
		dt->dyn_n = n;
	}
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *p = tab + i * ent;
		char name[TD_ELF_NAME_MAX];

		if (td__addr(s, p) != DT_NEEDED)
			continue;
		if (!have_str ||
		    td__strtab_get(s, str_off, str_size, td__addr(s, p + ent / 2), name,
				   sizeof(name)) != 0)
			snprintf(name, sizeof(name), "?");
		td__add_needed(out, name);
	}
	free(tab);
	if (have_str && have_soname)
		td__strtab_get(s, str_off, str_size, soname, out->soname, sizeof(out->soname));
	if (have_str && have_verneed &&
	    td__vaddr_to_off(s, ph, verneed_va, &verneed_off) == 0)
		td__read_verneed(s, verneed_off, verneed_num, str_off, str_size, out);
}

/* ---- dynamic symbols ---------------------------------------------------- */

/* Caps on the version tables a hostile file can make us walk. */
#define TD__MAX_VERDEF 4096
#define TD__VER_INDEX_MAX 0x7fffu

/* The string at idx of our copy of the string table; "" when outside. */
static const char *td__dstr(const struct td_elf_dyn *d, uint64_t idx)
{
	return idx < d->strtab_size ? d->strtab + idx : "";
}

/* Record version index ndx as name (needed from file, or NULL: our own). */
static int td__ver_set(struct td_elf_dyn *d, unsigned ndx, const char *name, const char *file)
{
	ndx &= TD__VER_INDEX_MAX;
	if (ndx >= d->n_vers) {
		size_t n = (size_t)ndx + 1;
		const char **v = realloc(d->vers, n * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		d->vers = v;
		v = realloc(d->vfiles, n * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		d->vfiles = v;
		for (size_t k = d->n_vers; k < n; k++)
			d->vers[k] = d->vfiles[k] = NULL;
		d->n_vers = n;
	}
	d->vers[ndx] = name;
	d->vfiles[ndx] = file;
	return 0;
}

/*
 * .gnu.version_d: the versions this file defines.  The base entry (the
 * file's own name) is not a version a reference can ask for: the loader
 * treats it as unversioned, and so do we.
 */
static int td__read_verdef(const struct td__src *s, const struct td__phdrs *ph,
			   const struct td__dyntags *dt, struct td_elf_dyn *d)
{
	uint64_t off, num = dt->verdef_num;

	if (td__vaddr_to_off(s, ph, dt->verdef_va, &off) != 0)
		return 0;
	if (num > TD__MAX_VERDEF)
		num = TD__MAX_VERDEF;
	for (uint64_t i = 0; i < num; i++) {
		unsigned char vd[20], va[8];
		uint16_t flags, ndx;
		uint32_t aux, next;

		if (td__read(s, off, vd, sizeof(vd)) != 0)
			return 0;
		flags = td__u16(s, vd + 2);
		ndx = td__u16(s, vd + 4);
		aux = td__u32(s, vd + 12);
		next = td__u32(s, vd + 16);
		if (!(flags & VER_FLG_BASE) && off + aux >= off &&
		    td__read(s, off + aux, va, sizeof(va)) == 0 &&
		    td__ver_set(d, ndx, td__dstr(d, td__u32(s, va)), NULL) != 0)
			return -ENOMEM;
		if (next == 0 || off + next < off)
			return 0;
		off += next;
	}
	return 0;
}

/* .gnu.version_r: the versions this file needs, and from which file. */
static int td__read_verneed_idx(const struct td__src *s, const struct td__phdrs *ph,
				const struct td__dyntags *dt, struct td_elf_dyn *d)
{
	uint64_t off, num = dt->verneed_num;
	unsigned total = 0;

	if (td__vaddr_to_off(s, ph, dt->verneed_va, &off) != 0)
		return 0;
	if (num > TD__MAX_VERNEED)
		num = TD__MAX_VERNEED;
	for (uint64_t i = 0; i < num; i++) {
		unsigned char vn[16];
		const char *file;
		uint16_t cnt;
		uint32_t next;
		uint64_t a;

		if (td__read(s, off, vn, sizeof(vn)) != 0)
			return 0;
		cnt = td__u16(s, vn + 2);
		file = td__dstr(d, td__u32(s, vn + 4));
		next = td__u32(s, vn + 12);
		a = off + td__u32(s, vn + 8);
		for (unsigned j = 0; j < cnt && total < TD__MAX_VERNAUX; j++, total++) {
			unsigned char va[16];
			uint32_t vna_next;

			if (a < off || td__read(s, a, va, sizeof(va)) != 0)
				break;
			if (td__ver_set(d, td__u16(s, va + 6), td__dstr(d, td__u32(s, va + 8)),
					file) != 0)
				return -ENOMEM;
			vna_next = td__u32(s, va + 12);
			if (vna_next == 0 || a + vna_next < a)
				break;
			a += vna_next;
		}
		if (next == 0 || off + next < off)
			return 0;
		off += next;
	}
	return 0;
}

/*
 * How many entries .dynsym has.  The section header says so directly;
 * without one, DT_HASH's nchain does; failing that, DT_GNU_HASH is walked
 * to the end of the chain that starts at the highest bucket.  0 when
 * nothing tells.
 */
static uint64_t td__count_syms(const struct td__src *s, const struct td__phdrs *ph,
			       const struct td__shinfo *si, const struct td__dyntags *dt,
			       size_t ent)
{
	uint64_t off, cap = TD_ELF_MAX_SYMS + 1u;
	unsigned char w[16];

	if (si->have_dynsym)
		return si->dynsym_size / ent;
	if (dt->have_hash && td__vaddr_to_off(s, ph, dt->hash_va, &off) == 0 &&
	    td__read(s, off, w, 8) == 0)
		return td__u32(s, w + 4);
	if (dt->have_gnu_hash && td__vaddr_to_off(s, ph, dt->gnu_hash_va, &off) == 0 &&
	    td__read(s, off, w, 16) == 0) {
		uint32_t nbuckets = td__u32(s, w), symoffset = td__u32(s, w + 4);
		uint32_t bloom = td__u32(s, w + 8), maxb = 0;
		uint64_t buckets = off + 16 + (uint64_t)bloom * (s->is64 ? 8 : 4), chains, idx;
		unsigned char b[4], *all;

		if (nbuckets == 0 || nbuckets > TD_ELF_MAX_SYMS || bloom > TD_ELF_MAX_SYMS)
			return 0;
		all = malloc(4ull * nbuckets);
		if (all == NULL || td__read(s, buckets, all, 4ull * nbuckets) != 0) {
			free(all);
			return 0;
		}
		for (uint32_t k = 0; k < nbuckets; k++)
			if (td__u32(s, all + 4ull * k) > maxb)
				maxb = td__u32(s, all + 4ull * k);
		free(all);
		if (maxb < symoffset)
			return symoffset;
		chains = buckets + 4ull * nbuckets;
		for (idx = maxb; idx < cap; idx++) {
			if (td__read(s, chains + 4 * (idx - symoffset), b, 4) != 0)
				return idx; /* cut short: what was seen */
			if (td__u32(s, b) & 1)
				return idx + 1;
		}
		return cap;
	}
	return 0;
}

/* Copy the dynamic string table, NUL-terminated; empty when unreadable. */
static int td__copy_strtab(const struct td__src *s, const struct td__dyntags *dt,
			   struct td_elf_dyn *d)
{
	uint64_t size = dt->str_size;

	if (!dt->have_str || dt->str_off >= s->size)
		size = 0;
	else if (size == 0 || size > s->size - dt->str_off)
		size = s->size - dt->str_off;
	if (size > TD_ELF_MAX_STRTAB)
		size = 0;
	d->strtab = malloc((size_t)size + 1);
	if (d->strtab == NULL)
		return -ENOMEM;
	if (size > 0 && td__read(s, dt->str_off, d->strtab, (size_t)size) != 0)
		size = 0;
	d->strtab[size] = '\0';
	d->strtab_size = (size_t)size;
	return 0;
}

/* Every DT_NEEDED, DT_RUNPATH and DT_RPATH, from the dynamic table again. */
static int td__collect_dynamic(const struct td__src *s, const struct td__phdrs *ph,
			       const struct td__dyntags *dt, struct td_elf_dyn *d)
{
	size_t ent = s->is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
	unsigned char *tab;
	size_t cap = 0;

	if (dt->have_runpath)
		d->runpath = td__dstr(d, dt->runpath);
	if (dt->have_rpath)
		d->rpath = td__dstr(d, dt->rpath);
	d->nodeflib = dt->nodeflib;
	if (dt->dyn_n == 0)
		return 0;
	tab = malloc((size_t)dt->dyn_n * ent);
	if (tab == NULL)
		return -ENOMEM;
	if (td__read(s, ph->dyn_off, tab, (size_t)dt->dyn_n * ent) != 0) {
		free(tab);
		return 0;
	}
	for (uint64_t i = 0; i < dt->dyn_n && d->n_needed < TD_ELF_MAX_DYN_NEEDED; i++) {
		const unsigned char *p = tab + i * ent;

		if (td__addr(s, p) != DT_NEEDED)
			continue;
		if (d->n_needed == cap) {
			const char **v;

			cap = cap ? cap * 2 : 16;
			v = realloc(d->needed, cap * sizeof(*v));
			if (v == NULL) {
				free(tab);
				return -ENOMEM;
			}
			d->needed = v;
		}
		d->needed[d->n_needed++] = td__dstr(d, td__addr(s, p + ent / 2));
	}
	free(tab);
	return 0;
}

/* The symbol table itself, with each entry's version. */
static int td__collect_syms(const struct td__src *s, const struct td__phdrs *ph,
			    const struct td__shinfo *si, const struct td__dyntags *dt,
			    struct td_elf_dyn *d)
{
	size_t ent = s->is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
	uint64_t off, count, vs_off = 0;
	unsigned char *tab, *vs = NULL;

	if (dt->have_symtab && td__vaddr_to_off(s, ph, dt->symtab_va, &off) == 0) {
		/* found through the segments */
	} else if (si->have_dynsym) {
		off = si->dynsym_off;
	} else {
		return 0;
	}
	count = td__count_syms(s, ph, si, dt, ent);
	if (count > TD_ELF_MAX_SYMS) {
		count = TD_ELF_MAX_SYMS;
		d->syms_cut = true;
	}
	if (off >= s->size)
		return 0;
	if (count > (s->size - off) / ent) {
		count = (s->size - off) / ent;
		d->syms_cut = true;
	}
	if (count == 0)
		return 0;
	tab = malloc((size_t)count * ent);
	d->syms = calloc((size_t)count, sizeof(*d->syms));
	if (tab == NULL || d->syms == NULL) {
		free(tab);
		return -ENOMEM;
	}
	if (td__read(s, off, tab, (size_t)count * ent) != 0) {
		free(tab);
		return 0;
	}
	if (dt->have_versym && td__vaddr_to_off(s, ph, dt->versym_va, &vs_off) == 0) {
		vs = malloc((size_t)count * 2);
		if (vs == NULL) {
			free(tab);
			return -ENOMEM;
		}
		if (td__read(s, vs_off, vs, (size_t)count * 2) != 0) {
			free(vs);
			vs = NULL;
		}
	}
	d->has_versym = vs != NULL;
	for (size_t i = 0; i < (size_t)count; i++) {
		const unsigned char *p = tab + i * ent;
		struct td_elf_sym *y = &d->syms[i];
		unsigned char info, other;

		if (s->is64) {
			info = p[4];
			other = p[5];
			y->shndx = td__u16(s, p + 6);
			y->value = td__u64(s, p + 8);
		} else {
			y->value = td__u32(s, p + 4);
			info = p[12];
			other = p[13];
			y->shndx = td__u16(s, p + 14);
		}
		y->name = td__dstr(d, td__u32(s, p));
		y->bind = (unsigned char)(info >> 4);
		y->type = (unsigned char)(info & 0xf);
		y->vis = (unsigned char)(other & 3);
		if (vs != NULL) {
			uint16_t v = td__u16(s, vs + 2 * i);

			y->hidden = (v & 0x8000) != 0;
			y->ver_index = (uint16_t)(v & TD__VER_INDEX_MAX);
			if (y->ver_index >= 2 && y->ver_index < d->n_vers) {
				y->version = d->vers[y->ver_index];
				y->version_file = d->vfiles[y->ver_index];
			}
		}
	}
	d->n_syms = (size_t)count;
	free(vs);
	free(tab);
	return 0;
}

/* Everything td_elf_dynamic promises, once td__inspect has found the tables. */
static int td__collect(const struct td__src *s, const struct td__phdrs *ph,
		       const struct td__shinfo *si, const struct td__dyntags *dt,
		       struct td_elf_dyn *d)
{
	int rc = td__copy_strtab(s, dt, d);

	if (rc == 0)
		rc = td__collect_dynamic(s, ph, dt, d);
	if (rc == 0 && dt->have_verdef)
		rc = td__read_verdef(s, ph, dt, d);
	if (rc == 0 && dt->have_verneed)
		rc = td__read_verneed_idx(s, ph, dt, d);
	if (rc == 0)
		rc = td__collect_syms(s, ph, si, dt, d);
	return rc;
}

void td_elf_dyn_free(struct td_elf_dyn *d)
{
	if (d == NULL)
		return;
	free(d->syms);
	free(d->needed);
	free(d->strtab);
	free(d->vers);
	free(d->vfiles);
	memset(d, 0, sizeof(*d));
}

bool td_elf_sym_exported(const struct td_elf_sym *y)
{
	if (y->shndx == SHN_UNDEF)
		return false;
	if (y->bind != STB_GLOBAL && y->bind != STB_WEAK && y->bind != STB_GNU_UNIQUE)
		return false;
	switch (y->type) {
	case STT_NOTYPE: case STT_OBJECT: case STT_FUNC: case STT_COMMON:
	case STT_TLS: case STT_GNU_IFUNC:
		break;
	default:
		return false;
	}
	if (y->value == 0 && y->type != STT_TLS && y->shndx != SHN_ABS)
		return false;
	return y->vis != STV_HIDDEN && y->vis != STV_INTERNAL;
}

bool td_elf_sym_matches(const struct td_elf_sym *def, bool has_versym, const char *want)
{
	if (!has_versym)
		return true;
	if (want == NULL)
		return def->ver_index < 3 || !def->hidden;
	if (def->version != NULL)
		return strcmp(def->version, want) == 0;
	return !def->hidden;
}

/* This build's ELF class and machine: what the library can be loaded into. */
static void td__host(int *cls, int *machine)
{
	*cls = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
#if defined(__x86_64__)
	*machine = EM_X86_64;
#elif defined(__i386__)
	*machine = EM_386;
#elif defined(__aarch64__)
	*machine = EM_AARCH64;
#elif defined(__arm__)
	*machine = EM_ARM;
#elif defined(__riscv)
	*machine = EM_RISCV;
#elif defined(__powerpc64__)
	*machine = EM_PPC64;
#elif defined(__s390x__)
	*machine = EM_S390;
#else
	*machine = -1;
#endif
}

/*
 * "#!" scripts, parsed as the kernel does: the interpreter runs up to the
 * first blank, and the rest of the line (trimmed) is one argument.
 */
static void td__parse_script(const unsigned char *head, size_t n, struct td_elf_info *out)
{
	size_t i = 2, start, end;

	out->kind = TD_ELF_SCRIPT;
	while (i < n && (head[i] == ' ' || head[i] == '\t'))
		i++;
	start = i;
	while (i < n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' && head[i] != '\0')
		i++;
	td__copy_name(out->script_interp, sizeof(out->script_interp),
		      (const char *)head + start, i - start);
	while (i < n && (head[i] == ' ' || head[i] == '\t'))
		i++;
	start = i;
	while (i < n && head[i] != '\n' && head[i] != '\0')
		i++;
	end = i;
	while (end > start && (head[end - 1] == ' ' || head[end - 1] == '\t' ||
			       head[end - 1] == '\r'))
		end--;
	td__copy_name(out->script_arg, sizeof(out->script_arg),
		      (const char *)head + start, end - start);
}

/* The whole inspection, from any source; the symbols too when dyn. */
static int td__inspect(struct td__src *s, struct td_elf_info *out, struct td_elf_dyn *dyn)
{
	unsigned char eh[sizeof(Elf64_Ehdr)];
	size_t ehsize;
	uint64_t phoff, shoff;
	unsigned phnum, phentsize, shnum, shentsize, shstrndx;
	struct td__phdrs ph;
	struct td__shinfo si;
	struct td__dyntags dt;
	int host_class, host_machine, rc;

	memset(&ph, 0, sizeof(ph));
	memset(&si, 0, sizeof(si));
	memset(&dt, 0, sizeof(dt));
	out->kind = TD_ELF_NOT_ELF;
	if (s->size >= 2) {
		unsigned char head[256];
		size_t n = s->size < sizeof(head) ? (size_t)s->size : sizeof(head);

		rc = td__read(s, 0, head, n);
		if (rc != 0)
			return rc;
		if (head[0] == '#' && head[1] == '!') {
			td__parse_script(head, n, out);
			return 0;
		}
	}
	if (s->size < EI_NIDENT)
		return 0;
	rc = td__read(s, 0, eh, EI_NIDENT);
	if (rc != 0)
		return rc;
	if (memcmp(eh, ELFMAG, SELFMAG) != 0)
		return 0;
	if ((eh[EI_CLASS] != ELFCLASS32 && eh[EI_CLASS] != ELFCLASS64) ||
	    (eh[EI_DATA] != ELFDATA2LSB && eh[EI_DATA] != ELFDATA2MSB) ||
	    eh[EI_VERSION] != EV_CURRENT)
		return td__damaged(out, "unknown ELF class, byte order or version");
	s->is64 = eh[EI_CLASS] == ELFCLASS64;
	s->le = eh[EI_DATA] == ELFDATA2LSB;
	out->elf_class = eh[EI_CLASS];
	out->elf_data = eh[EI_DATA];
	ehsize = s->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (td__read(s, 0, eh, ehsize) != 0)
		return td__damaged(out, "the ELF header is cut short");
	out->type = td__u16(s, eh + 16);
	out->machine = td__u16(s, eh + 18);
	td__host(&host_class, &host_machine);
	out->foreign = out->elf_class != host_class || out->machine != host_machine;
	if (s->is64) {
		phoff = td__u64(s, eh + 32);
		shoff = td__u64(s, eh + 40);
		phentsize = td__u16(s, eh + 54);
		phnum = td__u16(s, eh + 56);
		shentsize = td__u16(s, eh + 58);
		shnum = td__u16(s, eh + 60);
		shstrndx = td__u16(s, eh + 62);
	} else {
		phoff = td__u32(s, eh + 28);
		shoff = td__u32(s, eh + 32);
		phentsize = td__u16(s, eh + 42);
		phnum = td__u16(s, eh + 44);
		shentsize = td__u16(s, eh + 46);
		shnum = td__u16(s, eh + 48);
		shstrndx = td__u16(s, eh + 50);
	}
	if (out->type != ET_EXEC && out->type != ET_DYN) {
		out->kind = TD_ELF_OBJECT;
		return 0;
	}
	if (phnum == 0 || phnum > TD__MAX_PHNUM)
		return td__damaged(out, "it has no usable program headers");
	if (phentsize != (s->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)))
		return td__damaged(out, "its program headers have the wrong size");
	rc = td__read_phdrs(s, phoff, phnum, &ph, out);
	if (rc != 0 || out->damaged)
		return rc;
	td__read_shdrs(s, shoff, shnum, shentsize, shstrndx, &si, out);
	/* Without section names, look for the magic itself. */
	if (!out->go && !si.have_names && ph.n_wsegs > 0)
		out->go = td__go_magic_in(s, ph.wsegs, ph.n_wsegs);
	if (ph.has_dyn)
		td__read_dynamic(s, &ph, &si, out, dyn != NULL ? &dt : NULL);
	if (out->has_interp)
		out->kind = TD_ELF_DYNAMIC;
	else if (out->type == ET_EXEC)
		out->kind = TD_ELF_STATIC;
	else if (out->pie)
		out->kind = TD_ELF_STATIC_PIE;
	else if (out->soname[0] == '\0' && out->n_needed_total == 0 &&
		 td__u64(s, eh + 24) != 0)
		/* linkers before DF_1_PIE: no name, no dependencies, an entry point */
		out->kind = TD_ELF_STATIC_PIE;
	else
		out->kind = TD_ELF_LIBRARY;
	if (dyn != NULL && ph.has_dyn)
		return td__collect(s, &ph, &si, &dt, dyn);
	return 0;
}

int td_elf_dynamic_mem(const void *data, size_t len, struct td_elf_info *out,
		       struct td_elf_dyn *dyn)
{
	struct td__src s = {.fd = -1, .mem = data, .size = len};

	memset(out, 0, sizeof(*out));
	if (dyn != NULL)
		memset(dyn, 0, sizeof(*dyn));
	if (data == NULL && len != 0)
		return -EINVAL;
	if (data == NULL)
		s.mem = (const unsigned char *)"";
	return td__inspect(&s, out, dyn);
}

int td_elf_inspect_mem(const void *data, size_t len, struct td_elf_info *out)
{
	return td_elf_dynamic_mem(data, len, out, NULL);
}

/*
 * Only a regular file is read: a FIFO or a device could block or never
 * end.  The mode, owner and capabilities come from the open descriptor,
 * so they describe the same file as the bytes.  A nosuid mount makes the
 * kernel ignore set-user-ID bits and file capabilities, so they do not
 * count there.
 */
int td_elf_inspect(const char *path, struct td_elf_info *out)
{
	return td_elf_dynamic(path, out, NULL);
}

int td_elf_dynamic(const char *path, struct td_elf_info *out, struct td_elf_dyn *dyn)
{
	struct td__src s = {.fd = -1};
	struct statvfs vfs;
	struct stat st;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if (dyn != NULL)
		memset(dyn, 0, sizeof(*dyn));
	if (path == NULL || *path == '\0')
		return -ENOENT;
	/* Opening some devices has effects (a tape rewinds): look first. */
	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	s.fd = fd;
	s.size = (uint64_t)st.st_size;
	rc = td__inspect(&s, out, dyn);
	if (rc == 0) {
		bool nosuid = fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);

		out->uid = st.st_uid;
		out->gid = st.st_gid;
		if (!nosuid) {
			out->setuid = (st.st_mode & S_ISUID) != 0;
			/* without group execute, S_ISGID means mandatory locking */
			out->setgid = (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
			out->caps = fgetxattr(fd, "security.capability", NULL, 0) > 0;
		}
	}
	close(fd);
	return rc;
}

/* ---- verdicts ----------------------------------------------------------- */

enum td__cat {
	TD__C_NOT_ELF,
	TD__C_SCRIPT,
	TD__C_OBJECT,
	TD__C_FOREIGN,
	TD__C_GO,
	TD__C_STATIC,
	TD__C_STATIC_PIE,
	TD__C_LIBRARY,
	TD__C_SECURE,
	TD__C_DYNAMIC,
};

/*
 * One category per program, the first reason that applies: nothing else
 * matters once the loader cannot load the library (another machine), or
 * once the program bypasses libc (Go) or never runs the loader (static).
 */
static enum td__cat td__category(const struct td_elf_info *i)
{
	switch (i->kind) {
	case TD_ELF_NOT_ELF: return TD__C_NOT_ELF;
	case TD_ELF_SCRIPT: return TD__C_SCRIPT;
	case TD_ELF_OBJECT: return TD__C_OBJECT;
	default: break;
	}
	if (i->foreign)
		return TD__C_FOREIGN;
	if (i->go)
		return TD__C_GO;
	switch (i->kind) {
	case TD_ELF_STATIC: return TD__C_STATIC;
	case TD_ELF_STATIC_PIE: return TD__C_STATIC_PIE;
	case TD_ELF_LIBRARY: return TD__C_LIBRARY;
	default: break;
	}
	if (i->setuid || i->setgid || i->caps)
		return TD__C_SECURE;
	return TD__C_DYNAMIC;
}

const char *td_elf_kind_name(const struct td_elf_info *info)
{
	static const char *const names[] = {
		[TD__C_NOT_ELF] = "not-elf",   [TD__C_SCRIPT] = "script",
		[TD__C_OBJECT] = "object",     [TD__C_FOREIGN] = "foreign-arch",
		[TD__C_GO] = "go",	       [TD__C_STATIC] = "static",
		[TD__C_STATIC_PIE] = "static-pie", [TD__C_LIBRARY] = "library",
		[TD__C_SECURE] = "setuid",     [TD__C_DYNAMIC] = "dynamic",
	};

	return names[td__category(info)];
}

const char *td_elf_machine_name(int m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_X86_64: return "x86-64";
	case EM_AARCH64: return "aarch64";
	case EM_ARM: return "arm";
	case EM_RISCV: return "riscv";
	case EM_PPC: return "powerpc";
	case EM_PPC64: return "ppc64";
	case EM_S390: return "s390";
	case EM_MIPS: return "mips";
	case EM_SPARCV9: return "sparc64";
	case EM_LOONGARCH: return "loongarch";
	default: return NULL;
	}
}

/* snprintf that appends at *len and never runs past cap. */
__attribute__((format(printf, 4, 5)))
static void td__cat_printf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*len = (size_t)n >= cap - *len ? cap - 1 : *len + (size_t)n;
}

/* "a, b, c" from the DT_NEEDED list, "nothing" when empty. */
static void td__needed_list(const struct td_elf_info *i, char *buf, size_t cap, size_t *len)
{
	if (i->n_needed_total == 0) {
		td__cat_printf(buf, cap, len, "nothing");
		return;
	}
	for (int k = 0; k < i->n_needed; k++)
		td__cat_printf(buf, cap, len, "%s%s", k ? ", " : "", i->needed[k]);
	if (i->n_needed_total > i->n_needed)
		td__cat_printf(buf, cap, len, " and %d more", i->n_needed_total - i->n_needed);
}

static int td__verdict_foreign(const struct td_elf_info *i, char *buf, size_t cap, size_t *len)
{
	int host_class, host_machine;
	const char *mname = td_elf_machine_name(i->machine);

	td__host(&host_class, &host_machine);
	if (i->elf_class == ELFCLASS32 && host_class == ELFCLASS64) {
		td__cat_printf(buf, cap, len,
			       "32-bit program%s%s%s: the library is 64-bit, and the loader "
			       "cannot preload a 64-bit library into a 32-bit program",
			       mname ? " (" : "", mname ? mname : "", mname ? ")" : "");
	} else if (i->elf_class == ELFCLASS64 && host_class == ELFCLASS32) {
		td__cat_printf(buf, cap, len,
			       "64-bit program: the library is 32-bit, and the loader "
			       "cannot preload a 32-bit library into a 64-bit program");
	} else {
		char other[32];

		if (mname == NULL)
			snprintf(other, sizeof(other), "machine %d", i->machine);
		td__cat_printf(buf, cap, len,
			       "program for another machine (%s): the library is built for %s "
			       "and the loader cannot preload it there",
			       mname ? mname : other,
			       td_elf_machine_name(host_machine) ? td_elf_machine_name(host_machine)
							      : "this machine");
	}
	return 0;
}

/* The secure-mode sentence: what sets it, then what still reaches it. */
static void td__verdict_secure(const struct td_elf_info *i, char *buf, size_t cap, size_t *len)
{
	const char *what = i->setuid && i->setgid ? "set-user-ID and set-group-ID program"
			   : i->setuid		   ? "set-user-ID program"
			   : i->setgid		   ? "set-group-ID program"
						   : "program with file capabilities";

	td__cat_printf(buf, cap, len,
		       "%s%s: the loader runs it in secure mode and ignores LD_PRELOAD; "
		       "only /etc/ld.so.preload reaches it, and then the library ignores "
		       "the environment and reads only /etc/teardown.conf",
		       what, (i->setuid || i->setgid) && i->caps ? " with file capabilities" : "");
}

const char *td_elf_verdict(const struct td_elf_info *info, char *buf, size_t cap, int *ok)
{
	static char dummy[1];
	const struct td_elf_info *i = info;
	size_t len = 0;
	int good = 0;

	if (buf == NULL || cap == 0) {
		buf = dummy;
		cap = sizeof(dummy);
	}
	buf[0] = '\0';
	switch (td__category(i)) {
	case TD__C_NOT_ELF:
		if (i->damaged)
			td__cat_printf(buf, cap, &len,
				       "damaged ELF file (%s): the kernel cannot run it", i->damage);
		else
			td__cat_printf(buf, cap, &len,
				       "not an ELF file (and not a #! script): the kernel cannot "
				       "run it as a program, so there is nothing to interpose");
		break;
	case TD__C_SCRIPT: {
		const char *interp = i->script_interp[0] ? i->script_interp : "(no interpreter)";
		const char *sep = i->script_arg[0] ? " " : "";

		if (i->interp_info == NULL) {
			td__cat_printf(buf, cap, &len,
				       "script run by %s%s%s: the interpreter is what runs, and "
				       "the programs the script starts are checked separately",
				       interp, sep, i->script_arg);
			good = i->script_interp[0] != '\0';
			break;
		}
		td_elf_verdict(i->interp_info, NULL, 0, &good);
		if (good) {
			td__cat_printf(buf, cap, &len,
				       "script run by %s%s%s, which teardown can interpose; the "
				       "programs the script starts are checked separately",
				       interp, sep, i->script_arg);
		} else {
			char sub[512];

			td_elf_verdict(i->interp_info, sub, sizeof(sub), &good);
			td__cat_printf(buf, cap, &len,
				       "script run by %s%s%s, which teardown cannot interpose (%s)",
				       interp, sep, i->script_arg, sub);
		}
		break;
	}
	case TD__C_OBJECT:
		td__cat_printf(buf, cap, &len,
			       "ELF %s, not a program: nothing here runs on its own",
			       i->type == ET_REL ? "relocatable object" :
			       i->type == ET_CORE ? "core dump" : "file of an unknown type");
		break;
	case TD__C_FOREIGN:
		td__verdict_foreign(i, buf, cap, &len);
		break;
	case TD__C_GO:
		if (i->needs_libc)
			td__cat_printf(buf, cap, &len,
				       "Go binary linked with libc through cgo: Go makes its own "
				       "socket system calls directly, not through libc, so the "
				       "library sees only calls made through cgo");
		else
			td__cat_printf(buf, cap, &len,
				       "Go binary: Go makes system calls directly, not through "
				       "libc, so the library never sees its sockets");
		break;
	case TD__C_STATIC:
		td__cat_printf(buf, cap, &len,
			       "static binary: there is no dynamic loader, so LD_PRELOAD "
			       "never runs; teardown cannot act on it");
		break;
	case TD__C_STATIC_PIE:
		td__cat_printf(buf, cap, &len,
			       "static-pie binary: it relocates itself without the dynamic "
			       "loader, so LD_PRELOAD never runs; teardown cannot act on it");
		break;
	case TD__C_LIBRARY:
		td__cat_printf(buf, cap, &len,
			       "shared library, not a program: teardown acts on the programs "
			       "that load it, so check those");
		break;
	case TD__C_SECURE:
		td__verdict_secure(i, buf, cap, &len);
		break;
	case TD__C_DYNAMIC:
		if (strstr(i->interp, "ld-musl") != NULL) {
			td__cat_printf(buf, cap, &len,
				       "musl libc program (loader %s): the library is built "
				       "against glibc and cannot be loaded into it", i->interp);
		} else if (!i->needs_libc) {
			td__cat_printf(buf, cap, &len, "does not use libc.so.6 directly (needs: ");
			td__needed_list(i, buf, cap, &len);
			td__cat_printf(buf, cap, &len,
				       "): teardown interposes only calls that go through libc");
		} else {
			td__cat_printf(buf, cap, &len,
				       "dynamically linked against libc.so.6: teardown can "
				       "interpose its socket calls");
			good = 1;
		}
		break;
	}
	if (ok != NULL)
		*ok = good;
	return buf;
}

bool td_elf_secure_for_caller(const struct td_elf_info *info)
{
	if (info->setuid && info->uid != getuid())
		return true;
	if (info->setgid && info->gid != getgid())
		return true;
	/* file capabilities add privileges to anyone but a full root */
	if (info->caps && (getuid() != 0 || geteuid() != 0))
		return true;
	return false;
}

/* ---- PATH lookup -------------------------------------------------------- */

/* An existing regular file we may execute: what execvp() would run. */
static int td__exec_candidate(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	if (access(path, X_OK) != 0)
		return -EACCES;
	return 0;
}

int td_elf_which(const char *name, char *buf, size_t cap)
{
	char defpath[256];
	const char *path, *p;
	size_t nlen;
	int err = -ENOENT;

	if (cap == 0)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	if (name == NULL || *name == '\0')
		return -ENOENT;
	nlen = strlen(name);
	if (strchr(name, '/') != NULL) {
		struct stat st;

		if (nlen >= cap)
			return -ENAMETOOLONG;
		memcpy(buf, name, nlen + 1);
		return stat(buf, &st) == 0 ? 0 : -errno;
	}
	path = getenv("PATH");
	if (path == NULL) {
		size_t n = confstr(_CS_PATH, defpath, sizeof(defpath));

		path = n > 0 && n <= sizeof(defpath) ? defpath : "/bin:/usr/bin";
	}
	for (p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		int rc;

		if (dlen == 0) {
			/* an empty entry is the current directory */
			if (nlen + 3 > cap)
				return -ENAMETOOLONG;
			snprintf(buf, cap, "./%s", name);
		} else {
			if (dlen + 1 + nlen + 1 > cap) {
				err = -ENAMETOOLONG;
				goto next;
			}
			memcpy(buf, p, dlen);
			buf[dlen] = '/';
			memcpy(buf + dlen + 1, name, nlen + 1);
		}
		rc = td__exec_candidate(buf);
		if (rc == 0)
			return 0;
		if (rc == -EACCES)
			err = -EACCES; /* as execvp: remember, keep looking */
next:
		if (*end == '\0')
			break;
		p = end;
	}
	buf[0] = '\0';
	return err;
}
