#!/usr/bin/env bash
# Seeds the fuzz corpora from the reference fixtures:
#   bash fuzz/seed.sh [FIXTURES_DIR]
set -eu
cd "$(dirname "$0")"
fx="${1:-../../shared/fixtures}"
mkdir -p corpus/object_decode corpus/name_parse corpus/azure_xml corpus/records_decode
for c in "$fx"/*/blobs; do
    tag=$(basename "$(dirname "$c")")
    n=0
    # small blobs only (inodes, directory segments, the bucket), at most 200
    for f in "$c"/*; do
        name=$(basename "$f")
        printf '%s' "$name" > "corpus/name_parse/$tag-$n"
        if [ "$n" -lt 200 ] && [ "${name%.txt}" = "$name" ] && [ "$(stat -c %s "$f")" -lt 65536 ]; then
            cp "$f" "corpus/object_decode/$tag-$n"
        fi
        n=$((n + 1))
    done
done
echo "seeded: $(ls corpus/object_decode | wc -l) bodies, $(ls corpus/name_parse | wc -l) names"
# hand-written network bodies (List Blobs pages, an error document)
cp seeds/azure_xml/* corpus/azure_xml/
