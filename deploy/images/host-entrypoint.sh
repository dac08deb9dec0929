#!/bin/bash
# Installs the first-party plugins into the data directory on first start
# (in a fleet, one install reaches every host through the database), then
# runs agenthost with the given arguments.
set -euo pipefail
plugins=/opt/agenthost/plugins
if [ "${1:-}" = serve ] && [ ! -e "$AGENTHOST_DATA_DIR/.plugins-installed" ]; then
  for spec in computer:computer bash:shell editor:files scripted-policy: anthropic-policy:llm openai-policy:llm; do
    name=${spec%%:*} grant=${spec#*:}
    agenthost plugin install "$plugins/$name.wasm" ${grant:+--grant "$grant"} >/dev/null
  done
  touch "$AGENTHOST_DATA_DIR/.plugins-installed"
fi
exec agenthost "$@"
