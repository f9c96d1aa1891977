{
  # The Linux UDP receiver (recvmmsg(2) on its own thread). Needs only node's headers (N-API
  # and libuv's uv_err_name, both exported by the node binary); on other platforms it builds
  # to an empty module and src/ingest/udp/native-receiver.ts reports it unavailable.
  "targets": [
    {
      "target_name": "sealflow_udp",
      "sources": ["udp_receiver.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_LDFLAGS": ["-undefined", "dynamic_lookup"]
      }
    }
  ]
}
