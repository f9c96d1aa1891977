{
  # sd_notify(3) for `Type=notify` under systemd: one unix datagram to $NOTIFY_SOCKET. Needs
  # only node's headers (N-API); on other platforms it builds to a module that reports
  # ENOSYS, and src/observability/service-notify.ts stays silent there.
  "targets": [
    {
      "target_name": "sealflow_notify",
      "sources": ["sd_notify.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_LDFLAGS": ["-undefined", "dynamic_lookup"] }
    }
  ]
}
