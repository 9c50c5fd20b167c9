{
  "targets": [
    {
      "target_name": "nsjail_node",
      "sources": [
        "src-native/addon.cc",
        "src-native/plan.cc",
        "src-native/clone.cc",
        "src-native/child.cc",
        "src-native/child_fs.cc",
        "src-native/child_paths.cc",
        "src-native/child_net.cc",
        "src-native/child_limits.cc",
        "src-native/child_identity.cc",
        "src-native/parent_setup.cc",
        "src-native/hostids.cc",
        "src-native/syscall_table.cc",
        "src-native/spawn.cc",
        "src-native/spawner.cc",
        "src-native/discard.cc",
        "src-native/child_handle.cc",
        "src-native/teardown.cc",
        "src-native/syscalls.cc",
        "src-native/netlink.cc",
        "src-native/netns.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror=return-type", "-fno-exceptions", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "cflags": ["-fvisibility=hidden"]
    },
    {
      "target_name": "nsjail_node_init",
      "type": "executable",
      "sources": ["src-native/init.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    }
  ]
}
