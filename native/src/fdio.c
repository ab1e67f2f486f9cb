/* Placeholder until implemented. */
#include "../src/addon.h"
napi_status pvx_init_fdio(napi_env env, napi_value exports) { (void)env; (void)exports; return napi_ok; }
