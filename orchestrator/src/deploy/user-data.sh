#!/bin/sh
# elb-agent installer: EC2 user data written by `elb launch --deploy user-data`, run once as root
# by cloud-init at first boot. It downloads the agent, checks its SHA-256 and installs nothing
# unless the checksum matches. Messages go to stderr (cloud-init copies them to the console and
# /var/log/cloud-init-output.log).
set -eu

agent_url=@AGENT_URL@
agent_sha256=@AGENT_SHA256@
curl_proto=@CURL_PROTO@
install_dir=@INSTALL_DIR@
unit_path=@UNIT_PATH@

log() { printf 'elb user-data: %s\n' "$*" >&2; }

binary="$install_dir/elb-agent"
part="$binary.part"
made_dir=
if [ ! -d "$install_dir" ]; then
  mkdir -p "$install_dir"
  made_dir=1
fi
# On any failure: no half-downloaded file, and no install dir this script created.
cleanup() {
  rm -f "$part"
  if [ -n "$made_dir" ] && [ ! -e "$binary" ]; then rmdir "$install_dir" 2>/dev/null || true; fi
}
trap cleanup EXIT

log "downloading $agent_url"
curl -fsSL --proto "$curl_proto" --proto-redir "$curl_proto" --retry 8 --retry-delay 2 \
  --retry-connrefused --connect-timeout 10 --max-time 300 -o "$part" "$agent_url"
if ! printf '%s  %s\n' "$agent_sha256" "$part" | sha256sum -c --status -; then
  actual=$(sha256sum "$part" | cut -d ' ' -f 1)
  log "SHA-256 mismatch for $agent_url: expected $agent_sha256, got $actual; nothing installed"
  exit 1
fi
chmod 755 "$part"
mv -f "$part" "$binary"
log "installed $binary ($agent_sha256)"

if [ -d /run/systemd/system ]; then
  cat >"$unit_path.part" <<'ELB_UNIT_END'
@UNIT@
ELB_UNIT_END
  mv -f "$unit_path.part" "$unit_path"
  systemctl daemon-reload
  systemctl enable --now elb-agent.service
  log "started elb-agent.service"
else
  # Same convention as `elb deploy` on hosts without systemd: pid and log files beside the binary.
  setsid "$binary" @AGENT_ARGS@ >>"$install_dir/elb-agent.log" 2>&1 </dev/null &
  echo "$!" >"$install_dir/elb-agent.pid.part"
  mv -f "$install_dir/elb-agent.pid.part" "$install_dir/elb-agent.pid"
  log "started elb-agent detached (pid $!, log $install_dir/elb-agent.log)"
fi
