/* Shared declarations of the pvx_native addon: each source file registers its own functions. */
#ifndef PVX_ADDON_H
#define PVX_ADDON_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* Registers the fd-carrying socket primitives (fdio.c) on exports. */
napi_status pvx_init_fdio(napi_env env, napi_value exports);
/* Registers the namespace operations (nsops.c) on exports. */
napi_status pvx_init_nsops(napi_env env, napi_value exports);
/* Registers the service-manager notification (notify.c) on exports. */
napi_status pvx_init_notify(napi_env env, napi_value exports);
/* Registers the byte relays served in the addon (relay.c) on exports. */
napi_status pvx_init_relay(napi_env env, napi_value exports);

/* Throws a JS Error with .code = errno name, .errno = errno, and "<op> <path>: <name> (<text>)" as message. */
void pvx_throw_errno(napi_env env, int err, const char *op, const char *path);
/* Same, but returns the Error value instead of throwing it (for promise rejections). */
napi_value pvx_errno_error(napi_env env, int err, const char *op, const char *path);

/* After a call into JS: an exception it threw (status napi_pending_exception) is reported as uncaught, as after a
 * MakeCallback, so the process's handlers decide; any other status is left alone. */
void pvx_report_thrown(napi_env env, napi_status status);

/* Registers fn under name on exports. */
napi_status pvx_export(napi_env env, napi_value exports, const char *name, napi_callback fn);

/* Argument checks: each throws a TypeError or RangeError naming what is wrong and returns false (NULL). */
bool pvx_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
/* An integer in [min, max]. */
bool pvx_get_integer(napi_env env, napi_value value, const char *what, int64_t min, int64_t max, int64_t *out);
bool pvx_get_fd(napi_env env, napi_value value, int *fd);
/* The data of an external carrying `tag`. */
void *pvx_get_tagged(napi_env env, napi_value value, const napi_type_tag *tag, const char *message);

#endif
