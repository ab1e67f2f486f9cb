/* Module entry of the pvx_native addon and the helpers every part shares. */
#include "addon.h"

#include <errno.h>
#include <stdint.h>
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

void pvx_report_thrown(napi_env env, napi_status status) {
  if (status != napi_pending_exception) return;
  napi_value exception;
  napi_get_and_clear_last_exception(env, &exception);
  napi_fatal_exception(env, exception);
}

napi_status pvx_export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  napi_status status = napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, name, value);
}

/* ---- argument helpers ---- */

bool pvx_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return false;
  }
  return true;
}

bool pvx_get_integer(napi_env env, napi_value value, const char *what, int64_t min, int64_t max,
                     int64_t *out) {
  double number;
  char message[128];
  if (napi_get_value_double(env, value, &number) != napi_ok) {
    snprintf(message, sizeof message, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  /* The range test comes first: it also rejects NaN, and makes the cast below well defined. */
  if (!(number >= (double)min && number <= (double)max) || (double)(int64_t)number != number) {
    snprintf(message, sizeof message, "%s must be an integer in [%lld, %lld]", what, (long long)min,
             (long long)max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  *out = (int64_t)number;
  return true;
}

bool pvx_get_fd(napi_env env, napi_value value, int *fd) {
  int64_t number;
  if (!pvx_get_integer(env, value, "fd", 0, INT32_MAX, &number)) return false;
  *fd = (int)number;
  return true;
}

void *pvx_get_tagged(napi_env env, napi_value value, const napi_type_tag *tag, const char *message) {
  bool tagged = false;
  void *data;
  if (napi_check_object_type_tag(env, value, tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &data) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return NULL;
  }
  return data;
}

NAPI_MODULE_INIT() {
  if (pvx_init_fdio(env, exports) != napi_ok) return NULL;
  if (pvx_init_nsops(env, exports) != napi_ok) return NULL;
  if (pvx_init_notify(env, exports) != napi_ok) return NULL;
  if (pvx_init_relay(env, exports) != napi_ok) return NULL;
  return exports;
}
