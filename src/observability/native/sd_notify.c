// sealflow service-manager notification addon: sd_notify(3) without libsystemd.
//
// send(socketPath, message) sends `message` as ONE datagram on a new AF_UNIX SOCK_DGRAM socket
// to `socketPath`, the value of $NOTIFY_SOCKET: a filesystem path, or an abstract-namespace
// name written with a leading '@' (sent with a leading NUL byte, unix(7)). It returns 0, or
// the positive errno of the failing call. This is the whole protocol (sd_notify(3): newline-
// separated VAR=VALUE assignments, READY=1, STATUS=..., STOPPING=1, RELOADING=1); the
// credentials systemd checks (NotifyAccess=main) are the kernel's SCM_CREDENTIALS of this
// process, attached by the kernel because systemd enables SO_PASSCRED on its end.
//
// Invariants: no state, no threads; the socket is closed before returning; the message is not
// interpreted; a path longer than sun_path is EINVAL, never truncated.

#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>

#if defined(__linux__)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#define MAX_MESSAGE_BYTES 4096
// Longer than any sun_path (108 bytes on Linux), so a longer value is seen as too long, not cut.
#define MAX_PATH_BYTES 128

static napi_value make_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static int send_datagram(const char* path, size_t path_len, const char* msg, size_t msg_len) {
#if defined(__linux__)
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path_len < 2 || path_len >= sizeof sa.sun_path) return EINVAL;
  if (path[0] != '/' && path[0] != '@') return EAFNOSUPPORT;
  memcpy(sa.sun_path, path, path_len);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ssize_t n = sendto(fd, msg, msg_len, MSG_NOSIGNAL, (const struct sockaddr*)&sa, len);
  int err = n < 0 ? errno : ((size_t)n != msg_len ? EMSGSIZE : 0);
  close(fd);
  return err;
#else
  (void)path; (void)path_len; (void)msg; (void)msg_len;
  return ENOSYS;
#endif
}

static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "send(socketPath, message) takes two strings");
    return NULL;
  }
  char path[MAX_PATH_BYTES + 1];
  char msg[MAX_MESSAGE_BYTES + 1];
  size_t path_len = 0, msg_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &msg_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "send(socketPath, message) takes two strings");
    return NULL;
  }
  // napi_get_value_string_utf8 truncates silently: a value that filled the buffer may be longer.
  if (path_len >= sizeof path - 1) return make_int(env, EINVAL);
  if (msg_len >= sizeof msg - 1) return make_int(env, EMSGSIZE);
  return make_int(env, send_datagram(path, path_len, msg, msg_len));
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, Send, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
