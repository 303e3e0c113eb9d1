#!/usr/bin/env bash
# Pack what the GPU scripts finished so far into $OUT (the device tool brings back at most 8 files):
# run reports, metrics, per-example verdicts and logs, in one archive.
#   bash bench/gpu_collect.sh /root/work "$OUT"
WORK=${1:-/root/work}
DEST=${2:?where to put results.tgz}
cd "$WORK" || exit 1
tar czf "$DEST/results.tgz" --ignore-failed-read $(ls -d *.log out */report.json */report.md */data/stats.json \
  */adapter/gemsql_config.yaml */full_model/gemsql_config.yaml sc*/*.log sc*/*.profile/*.txt sc4b-profiles/*/*.txt tt4b-profile/*.txt */eval/*/metrics.json */eval/*/verdicts.jsonl */eval/metrics.json */eval/verdicts.jsonl 2>/dev/null) 2>/dev/null
ls -la "$DEST"
