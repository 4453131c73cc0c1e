{
  "variables": {
    "ane_bridge_with_ane%": "<!(node -p \"process.env.ANE_BRIDGE_NO_ANE === '1' ? 'no' : 'yes'\")"
  },
  "targets": [
    {
      "target_name": "ane_bridge",
      "sources": [
        "native/addon.cc",
        "native/cpu_features.cc",
        "native/kernels/fp16.cc",
        "native/kernels/gemm.cc",
        "native/kernels/napi_kernels.cc",
        "native/kernels/optimizers.cc",
        "native/kernels/rowwise.cc",
        "native/kernels/napi_sim_ops.cc",
        "native/kernels/sim_ops.cc",
        "native/kernels/simd.cc",
        "native/kernels/thread_pool.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-math-errno", "-ffp-contract=off", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "13.0",
        "OTHER_CFLAGS": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-math-errno", "-ffp-contract=off"]
      },
      "conditions": [
        [
          "OS==\"mac\" and target_arch==\"arm64\"",
          {
            "defines": ["ANE_BRIDGE_HAS_ACCELERATE=1"],
            "link_settings": { "libraries": ["-framework Accelerate"] }
          }
        ],
        [
          "OS==\"mac\" and target_arch==\"arm64\" and ane_bridge_with_ane==\"yes\"",
          {
            "sources": [
              "native/mac/ane_framework_probe.cc",
              "native/mac/platform_mac.cc",
              "native/ane/ane_device.cc",
              "native/ane/ane_addon.cc",
              "native/ane/posix_files.cc"
            ],
            "defines": ["ANE_BRIDGE_HAS_MAC_ANE=1"],
            "link_settings": {
              "libraries": ["-framework CoreFoundation", "-framework Foundation", "-framework IOSurface", "-lobjc", "-ldl"]
            }
          }
        ]
      ]
    }
  ]
}
