/*
 * teardown: rule matching.  This is where a socket's rule is decided:
 * the first rule whose every criterion matches wins.  Called once per
 * socket (at bind, connect or accept), never at close.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/policy.h"

static bool td__cidr_has(const struct td_cidr *c, const struct td_addr *a)
{
	unsigned full, rest;

	if (c->family != a->family)
		return false;
	full = c->prefix / 8u;
	rest = c->prefix % 8u;
	if (memcmp(c->addr, a->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((c->addr[full] ^ a->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool td__cidrs_have(const struct td_cidr *v, uint32_t n,
			   const struct td_addr *a)
{
	for (uint32_t i = 0; i < n; i++)
		if (td__cidr_has(&v[i], a))
			return true;
	return false;
}

static bool td__ports_have(const struct td_portrange *v, uint32_t n,
			   uint16_t port)
{
	for (uint32_t i = 0; i < n; i++)
		if (port >= v[i].lo && port <= v[i].hi)
			return true;
	return false;
}

bool td_rule_match(const struct td_rule *r, const struct td_match_ctx *ctx)
{
	if (!r->program_ok)
		return false;
	if (r->role != TD_ROLE_ANY && (ctx->known & TD_K_ROLE) &&
	    r->role != ctx->role)
		return false;
	if (ctx->known & TD_K_REMOTE) {
		if (r->n_remote &&
		    !td__cidrs_have(r->remote, r->n_remote, &ctx->remote))
			return false;
		if (r->n_remote_port &&
		    !td__ports_have(r->remote_port, r->n_remote_port,
				    ctx->remote.port))
			return false;
	}
	if (r->n_local || r->n_local_port) {
		if (!(ctx->known & TD_K_LOCAL))
			return false;
		if (r->n_local && !td__cidrs_have(r->local, r->n_local, &ctx->local))
			return false;
		if (r->n_local_port &&
		    !td__ports_have(r->local_port, r->n_local_port, ctx->local.port))
			return false;
	}
	return true;
}

int td_policy_decide(const struct td_policy *p, const struct td_match_ctx *ctx)
{
	for (uint32_t i = 0; i < p->n_rules; i++)
		if (td_rule_match(&p->rules[i], ctx))
			return (int)i;
	return -1;
}

void td_policy_bind_program(struct td_policy *p, const char *prog,
			    const char *exe)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		struct td_rule *r = &p->rules[i];

		r->program_ok = r->program == NULL ||
				(prog && fnmatch(r->program, prog, 0) == 0) ||
				(exe && fnmatch(r->program, exe, 0) == 0);
	}
}

void td_policy_finish(struct td_policy *p)
{
	p->uses_local = p->any_fault = p->any_bytes_fault = p->any_leak = false;
	for (uint32_t i = 0; i < p->n_rules; i++) {
		const struct td_rule *r = &p->rules[i];

		p->uses_local |= r->n_local || r->n_local_port;
		p->any_fault |= r->has_fault;
		p->any_bytes_fault |= r->has_fault && r->fault.rst_after_bytes;
		p->any_leak |= r->leak_after_s != 0;
	}
}

void td_policy_free(struct td_policy *p)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		struct td_rule *r = &p->rules[i];

		free(r->program);
		free(r->remote);
		free(r->local);
		free(r->remote_port);
		free(r->local_port);
	}
	free(p->rules);
	p->rules = NULL;
	p->n_rules = 0;
}

const char *td_close_action_name(int a)
{
	static const char *const n[] = {"pass", "graceful", "drain", "abort"};

	return a >= 0 && a < 4 ? n[a] : "?";
}

const char *td_shut_action_name(int a)
{
	static const char *const n[] = {"pass", "half", "skip"};

	return a >= 0 && a < 3 ? n[a] : "?";
}

const char *td_role_name(int r)
{
	static const char *const n[] = {"any", "client", "server"};

	return r >= 0 && r < 3 ? n[r] : "?";
}
