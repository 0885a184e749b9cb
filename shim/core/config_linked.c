/*
 * teardown: the libconfig api bound at link time, for the command and the
 * unit tests.  The preloaded library never links this file: it fills a
 * struct td_cfgapi from dlopen() instead, so that libconfig is not one of
 * its load-time dependencies.
 */
#include "teardown/config.h"

/* config_root_setting() is a macro in libconfig 1.5: wrap it. */
static config_setting_t *td__root(const config_t *cfg)
{
	return config_root_setting(cfg);
}

const struct td_cfgapi *td_cfgapi_linked(void)
{
	static const struct td_cfgapi api = {
		.init = config_init,
		.destroy = config_destroy,
		.read_string = config_read_string,
		.root = td__root,
		.get_elem = config_setting_get_elem,
		.get_member = config_setting_get_member,
		.length = config_setting_length,
		.get_int = config_setting_get_int,
		.get_int64 = config_setting_get_int64,
		.get_float = config_setting_get_float,
		.get_bool = config_setting_get_bool,
		.get_string = config_setting_get_string,
	};

	return &api;
}
