"""`lab bench`: measure the pipeline and print figures (never pass/fail). `vod` and `live` live in submodules."""
