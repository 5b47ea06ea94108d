/*
 * config.c - settings resolution (see config.h).  Holds no state.
 */
#include <stdlib.h>

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
