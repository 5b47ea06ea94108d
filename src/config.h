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

#endif
