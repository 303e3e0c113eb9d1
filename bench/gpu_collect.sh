#!/usr/bin/env bash
# Pack what the GPU scripts finished so far into DEST (the device tool's $OUT brings back at most 8 files, 16 MiB
# each): results.tgz with the records, reports, metrics, profiles and the last 20 KB of every log; and one archive per
# finished Spider run (at most seven) with its per-example verdicts and its adapter (the first-token and decoding
# questions a verdict cannot answer need the model). In the tenth session one archive of everything, verdicts and
# progress-bar logs included, came to 25 MB and did not come back.
#   bash bench/gpu_collect.sh /root/work "$OUT"
WORK=${1:-/root/work}
DEST=${2:?where to put the archives}
cd "$WORK" || exit 1
TAILS=$(mktemp -d)
for log in *.log sc*/*.log; do
  [ -f "$log" ] && mkdir -p "$TAILS/$(dirname "$log")" && tail -c 20000 "$log" > "$TAILS/$log"
done
tar czf "$DEST/results.tgz" --ignore-failed-read -C "$TAILS" . -C "$WORK" $(ls -d out/*.json */report.json */report.md \
  */data/stats.json */adapter/gemsql_config.yaml */full_model/gemsql_config.yaml sc*/*.profile/*.txt \
  sc4b-profiles/*/*.txt tt4b-profile/*.txt tt4b-syncs/*.txt memory/*.txt */eval/*/metrics.json */eval/metrics.json 2>/dev/null) 2>/dev/null
rm -rf "$TAILS"
# (adapters without the tokenizer, 33 MB, which the GGUF rebuilds)
for run in $(for d in spider-*/; do [ -f "$d/report.json" ] && echo "${d%/}"; done | head -7); do
  tar czf "$DEST/run-$run.tgz" --ignore-failed-read --exclude=tokenizer.json \
    $(ls -d "$run"/eval/*/verdicts.jsonl "$run"/eval/verdicts.jsonl "$run"/adapter 2>/dev/null)
done
ls -la "$DEST"
