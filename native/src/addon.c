/* Module entry of the pvx_native addon and the helpers every part shares. */
#include "addon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

napi_value pvx_errno_error(napi_env env, int err, const char *op, const char *path) {
  const char *name = strerrorname_np(err);
  char message[512];
  if (path != NULL && path[0] != '\0')
    snprintf(message, sizeof message, "%s %s: %s (%s)", op, path, name ? name : "E?", strerror(err));
  else
    snprintf(message, sizeof message, "%s: %s (%s)", op, name ? name : "E?", strerror(err));
  napi_value msg, code, error, errnum;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_value syscall;
  napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &syscall);
  napi_set_named_property(env, error, "syscall", syscall);
  if (path != NULL) {
    napi_value p;
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p);
    napi_set_named_property(env, error, "path", p);
  }
  return error;
}

void pvx_throw_errno(napi_env env, int err, const char *op, const char *path) {
  napi_throw(env, pvx_errno_error(env, err, op, path));
}

napi_status pvx_export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  napi_status status = napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, name, value);
}

NAPI_MODULE_INIT() {
  if (pvx_init_fdio(env, exports) != napi_ok) return NULL;
  if (pvx_init_nsops(env, exports) != napi_ok) return NULL;
  if (pvx_init_notify(env, exports) != napi_ok) return NULL;
  return exports;
}
