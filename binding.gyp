{
  "targets": [
    {
      "target_name": "airlock_prefilter",
      "sources": ["native/prefilter.c"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3", "-std=c11"] }
    }
  ]
}
