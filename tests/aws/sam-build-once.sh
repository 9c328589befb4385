#!/usr/bin/env bash
# `sam build` builds the one binary once for every function, for the
# Architecture parameter's value: SAM's own build graph, run with a stand-in
# for `cargo lambda` that records its calls and writes a placeholder
# bootstrap (nothing is compiled). Usage: tests/aws/sam-build-once.sh [SAM]
set -euo pipefail
cd "$(dirname "$0")/../.."
sam="${1:-.venv-sam/bin/sam}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/target/lambda/hub-lambda"
cargo=$(command -v cargo)
cat > "$tmp/bin/cargo" <<SH
#!/usr/bin/env bash
if [[ "\$1" == lambda ]]; then
  echo "\$*" >> "$tmp/calls"
  if [[ "\$2" == build ]]; then echo placeholder > "$tmp/target/lambda/hub-lambda/bootstrap"; fi
  exit 0
fi
exec "$cargo" "\$@"
SH
cp "$tmp/bin/cargo" "$tmp/bin/cargo-lambda"
chmod +x "$tmp/bin/cargo" "$tmp/bin/cargo-lambda"
for arch in arm64 x86_64; do
  rm -f "$tmp/calls"
  # The copy step reads target/lambda/hub-lambda/bootstrap: point it at the placeholder.
  CARGO_TARGET_DIR="$tmp/target" PATH="$tmp/bin:$PATH" SAM_CLI_TELEMETRY=0 \
    "$sam" build --build-dir "$tmp/build-$arch" --parameter-overrides "Architecture=$arch" > "$tmp/out" 2>&1 \
    || { cat "$tmp/out"; exit 1; }
  builds=$(grep -c '^Building codeuri' "$tmp/out" || true)
  calls=$(grep -c '^lambda build' "$tmp/calls" || true)
  shared=$(grep -c 'CodeUri: .*-Shared' "$tmp/build-$arch/template.yaml" || true)
  functions=$(grep -c 'Type: AWS::Serverless::Function' template.yaml)
  flag=$(grep -c -- '--arm64' "$tmp/calls" || true)
  echo "sam build, Architecture=$arch: $builds build, $calls cargo lambda build ($(head -1 "$tmp/calls")), $shared of $functions functions share its artifact"
  [[ "$builds" == 1 && "$calls" == 1 && "$shared" == "$functions" ]] || { cat "$tmp/out"; exit 1; }
  [[ ("$arch" == arm64 && "$flag" == 1) || ("$arch" == x86_64 && "$flag" == 0) ]] || { echo "wrong target for $arch"; exit 1; }
done
