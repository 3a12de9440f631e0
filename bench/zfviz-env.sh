# Sourced by the benchmark scripts: zfviz_env CMD... runs CMD with zfviz's threads waiting as the
# zfviz program would have them wait at this moment (tools/main.c; asked of `zfviz info`): a short
# spin where the cores are free, else passive. A setting the caller made (OMP_WAIT_POLICY,
# GOMP_SPINCOUNT) is kept. Needs $build, the build folder holding tools/zfviz.
zfviz_env() {
  if [ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ]; then "$@"; return; fi
  if "$build/tools/zfviz" info 2>/dev/null | grep -q "wait policy passive"; then
    OMP_WAIT_POLICY=passive "$@"
  else
    GOMP_SPINCOUNT=3000 "$@"
  fi
}
