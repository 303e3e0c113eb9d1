#!/usr/bin/env bash
# Pack what the GPU scripts finished so far into $OUT (the device tool brings back at most 8 files, 16 MiB each):
# run reports, metrics, per-example verdicts and logs, in one archive; and the adapters of the finished Spider runs
# (up to 15 MB each, at most four: the first-token and decoding questions a verdict cannot answer need the model),
# one archive each.
#   bash bench/gpu_collect.sh /root/work "$OUT"
WORK=${1:-/root/work}
DEST=${2:?where to put results.tgz}
cd "$WORK" || exit 1
tar czf "$DEST/results.tgz" --ignore-failed-read $(ls -d *.log out */report.json */report.md */data/stats.json \
  */adapter/gemsql_config.yaml */full_model/gemsql_config.yaml sc*/*.log sc*/*.profile/*.txt sc4b-profiles/*/*.txt tt4b-profile/*.txt */eval/*/metrics.json */eval/*/verdicts.jsonl */eval/metrics.json */eval/verdicts.jsonl 2>/dev/null) 2>/dev/null
# (without the tokenizer, 33 MB, which the GGUF rebuilds)
for run in $(for d in spider-*/; do [ -f "$d/report.json" ] && [ -d "$d/adapter" ] && echo "${d%/}"; done | head -4); do
  tar czf "$DEST/adapter-$run.tgz" --exclude=tokenizer.json "$run/adapter"
done
ls -la "$DEST"
