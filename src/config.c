/*
 * config.c - settings resolution (see config.h).  Holds no state.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "banned.h"

const char *
config_pick(const char *flag_value, const char *env_name)
{
    const char *v;

    if (flag_value != NULL)
        return flag_value;
    v = getenv(env_name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

void
config_env_name(const char *flag, char out[CONFIG_ENV_NAME_MAX])
{
    size_t n = strlen(CONFIG_ENV_PREFIX), i;

    if (n + strlen(flag) >= CONFIG_ENV_NAME_MAX) {
        out[0] = '\0';
        return;
    }
    memcpy(out, CONFIG_ENV_PREFIX, n);
    for (i = 0; flag[i] != '\0'; i++)
        out[n + i] = flag[i] == '-' ? '_' : flag[i] >= 'a' && flag[i] <= 'z'
                                                 ? (char)(flag[i] - 'a' + 'A') : flag[i];
    out[n + i] = '\0';
}

const char *
config_pick_flag(const char *flag_value, const char *flag)
{
    char env[CONFIG_ENV_NAME_MAX];

    if (flag_value != NULL)
        return flag_value;
    config_env_name(flag, env);
    return env[0] != '\0' ? config_pick(NULL, env) : NULL;
}
