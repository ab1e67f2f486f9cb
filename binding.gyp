{
  "targets": [
    {
      "target_name": "pvx_native",
      "sources": [
        "native/src/addon.c",
        "native/src/cmsg.c",
        "native/src/fdio.c",
        "native/src/nsops.c",
        "native/src/pin.c",
        "native/src/receive.c",
        "native/src/relay.c",
        "native/src/resolve.c",
        "native/src/notify.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-O2"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "libraries": ["-lpthread"]
    }
  ]
}
