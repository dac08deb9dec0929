#!/bin/bash
# Starts the desktop (Xvnc as `desktop`) and the agent's side (the exec
# service and the window manager as `agent`), then waits; exits (and so
# stops the container) as soon as Xvnc or the exec service dies, so the
# host sees a dead sandbox. Runs as root with only SETUID and SETGID, which
# setpriv uses to become each user; the processes it starts keep no
# capabilities, and no-new-privileges stops them from gaining any.
set -euo pipefail
: "${AGENTHOST_VNC_PASSWORD:?the host must set AGENTHOST_VNC_PASSWORD}"
: "${AGENTHOST_EXEC_SECRET:?the host must set AGENTHOST_EXEC_SECRET}"
# Secrets leave the environment before anything starts: each goes only to
# the one process that needs it.
vnc_password=$AGENTHOST_VNC_PASSWORD exec_secret=$AGENTHOST_EXEC_SECRET
unset AGENTHOST_VNC_PASSWORD AGENTHOST_EXEC_SECRET
geometry=${AGENTHOST_SCREEN:-1280x800}
depth=${AGENTHOST_DEPTH:-24}

as_desktop() { setpriv --reuid=desktop --regid=desktop --init-groups --inh-caps=-all -- "$@"; }
as_agent() {
  setpriv --reuid=agent --regid=agent --init-groups --inh-caps=-all -- \
    env HOME=/home/agent USER=agent LOGNAME=agent "$@"
}

# The VNC password file lives in a folder only `desktop` can enter.
vncdir=$(as_desktop mktemp -d /tmp/.desktop-XXXXXXXX)
printf '%s\n' "$vnc_password" | as_desktop sh -c 'umask 077; vncpasswd -f > "$1/passwd"' sh "$vncdir"
unset vnc_password

# -localhost=0: listen on the container's interface so Docker can publish
# the port; the host publishes it on 127.0.0.1 only.
as_desktop env HOME="$vncdir" Xvnc :1 -geometry "$geometry" -depth "$depth" -rfbport 5900 -localhost=0 \
  -SecurityTypes VncAuth -rfbauth "$vncdir/passwd" -AlwaysShared \
  -AcceptCutText=1 -SendCutText=1 -AcceptSetDesktopSize=0 -desktop agenthost >/tmp/xvnc.log 2>&1 &
xvnc=$!

for _ in $(seq 1 200); do [ -S /tmp/.X11-unix/X1 ] && break; sleep 0.01; done
as_agent openbox >/tmp/openbox.log 2>&1 &
# A plain background and the panel: what the model's first screenshot shows.
as_agent xsetroot -solid '#3b5b7a' || true
# The panel goes up once openbox manages the screen (tint2 started before
# the window manager waits about a second to try again; after it, about
# 50 ms), and the exec service (so readiness) waits for it, watching the
# work area shrink by the panel's strip: up to 5 s (a busy machine slows
# openbox down; a desktop is more use ready without its panel than late),
# after which the panel is started anyway and readiness no longer waits for
# it. xprop -spy reports each change, so nothing polls.
screen_height=${geometry#*x}
exec {workarea}< <(exec timeout 5 xprop -display :1 -root -spy _NET_WORKAREA 2>/dev/null)
spy=$!
panel=
while read -r line <&"$workarea"; do
  # "_NET_WORKAREA(CARDINAL) = x, y, width, height, ...", once openbox set it.
  height=$(sed -n 's/^[^=]*= *[0-9]*, *[0-9]*, *[0-9]*, *\([0-9]*\).*/\1/p' <<<"$line")
  [ -n "$height" ] || continue
  if [ -z "$panel" ]; then
    as_agent tint2 -c /etc/xdg/tint2/tint2rc >/tmp/tint2.log 2>&1 &
    panel=1
  fi
  [ "$height" -lt "$screen_height" ] && break
done
exec {workarea}<&-
kill "$spy" 2>/dev/null || true
if [ -z "$panel" ]; then
  as_agent tint2 -c /etc/xdg/tint2/tint2rc >/tmp/tint2.log 2>&1 &
fi
AGENTHOST_EXEC_SECRET=$exec_secret as_agent python3 /opt/agenthost/execd.py >/tmp/execd.log 2>&1 &
execd=$!
unset exec_secret
wait -n "$xvnc" "$execd"
