{
  # DTLS over the OpenSSL that the node binary itself links and exports.
  # No libssl/libcrypto is linked here on purpose: the undefined OpenSSL symbols resolve
  # against the node executable when the addon is loaded (checked eagerly with RTLD_NOW by
  # src/ingest/dtls/native-binding.ts), and the headers come from node's include directory
  # (<nodedir>/include/node/openssl), which matches node's bundled OpenSSL version.
  "targets": [
    {
      "target_name": "sealflow_dtls",
      "sources": ["dtls_addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "OPENSSL_API_COMPAT=30000", "OPENSSL_NO_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_LDFLAGS": ["-undefined", "dynamic_lookup"]
      }
    }
  ]
}
