# Sourced by the guest's boot scripts.

# Seconds since boot, as the kernel counts them: the lines then read like the
# kernel's own and line up with the timings in the host's notes.
uptime_s() {
	read -r up _ </proc/uptime
	echo "$up"
}

# Straight to the console: rcS's stdout is the console too, but user data and
# hook scripts run with other descriptors.
log() {
	echo "onestack-guest[$(uptime_s)]: $*" >/dev/console
}

# /etc/modules lists only what the build found as loadable modules (the rest
# is built into the kernel), so a failure here is worth a line on the console.
load_modules() {
	while read -r m _; do
		case $m in '' | '#'*) continue ;; esac
		modprobe -q "$m" 2>/dev/null || log "modprobe $m failed"
	done </etc/modules
}
