/*
 * config.h - where coffre's settings come from, and their defaults, in one
 * place.  Order: command-line flag, then environment (COFFRE_*), then the
 * default below.  (A config file arrives with the server.)
 */
#ifndef COFFRE_CONFIG_H
#define COFFRE_CONFIG_H

/* Environment variables. */
#define CONFIG_ENV_DATA    "COFFRE_DATA"      /* --data: the data directory */
#define CONFIG_ENV_KEYRING "COFFRE_KEYRING"   /* --keyring: default DATA/keyring */
#define CONFIG_ENV_DPO_CONTACT "COFFRE_DPO_CONTACT" /* scope --dpo-contact: for Art. 33(3)(b) */

/* Defaults. */
#define CONFIG_DEFAULT_ACADEMIE "10"            /* demo-data: Lyon */
#define CONFIG_DEFAULT_SEED     42              /* demo-data */

/* The flag's value if given, else the environment's, else NULL. */
const char *config_pick(const char *flag_value, const char *env_name);

/*
 * Flags that may also come from the environment, named after the flag:
 * --guard-window-short-s -> COFFRE_GUARD_WINDOW_SHORT_S.  `coffre serve`
 * reads every --guard-* flag (budgets, windows, miss weight, block time,
 * dry run), --alert-webhook and --export-max-rows this way.  Defaults:
 * docs/guard.md.
 */
#define CONFIG_ENV_PREFIX "COFFRE_"
#define CONFIG_ENV_NAME_MAX 64
/* out gets the variable of flag ("" if it does not fit). */
void config_env_name(const char *flag, char out[CONFIG_ENV_NAME_MAX]);
/* config_pick for such a flag. */
const char *config_pick_flag(const char *flag_value, const char *flag);

#endif
