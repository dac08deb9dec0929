#!/bin/bash
# Starts the desktop and the exec service; exits (and so stops the
# container) as soon as either dies, so the host sees a dead sandbox.
set -euo pipefail
: "${AGENTHOST_VNC_PASSWORD:?the host must set AGENTHOST_VNC_PASSWORD}"
: "${AGENTHOST_EXEC_SECRET:?the host must set AGENTHOST_EXEC_SECRET}"
geometry=${AGENTHOST_SCREEN:-1280x800}
depth=${AGENTHOST_DEPTH:-24}

mkdir -p "$HOME/.vnc"
printf '%s\n' "$AGENTHOST_VNC_PASSWORD" | vncpasswd -f > "$HOME/.vnc/passwd"
chmod 600 "$HOME/.vnc/passwd"
unset AGENTHOST_VNC_PASSWORD

# -localhost=0: listen on the container's interface so Docker can publish
# the port; the host publishes it on 127.0.0.1 only.
Xvnc :1 -geometry "$geometry" -depth "$depth" -rfbport 5900 -localhost=0 \
  -SecurityTypes VncAuth -rfbauth "$HOME/.vnc/passwd" -AlwaysShared \
  -AcceptCutText=1 -SendCutText=1 -desktop agenthost >/tmp/xvnc.log 2>&1 &

for _ in $(seq 1 200); do [ -S /tmp/.X11-unix/X1 ] && break; sleep 0.01; done
openbox >/tmp/openbox.log 2>&1 &
python3 /opt/agenthost/execd.py >/tmp/execd.log 2>&1 &
wait -n
