#!/bin/sh
# A stand-in for the ulp agent in fleet tests. It behaves as the file "mode"
# in its staging folder says (ok, error, crash, slow, slow-apply, pause;
# default ok), prints the agent's --json records, and keeps a ledger of
# applied patches there and a log of its triggers ("calls": action and
# patch id, a line per trigger started). slow waits up to 30 s, and ends
# early when the mode file changes; slow-apply does the same for applies
# only.
dir=$(dirname "$0")/..
mode=ok
[ -f "$dir/mode" ] && mode=$(cat "$dir/mode")
ledger="$dir/ledger"
cmd=$1
shift
action=apply
patch=
while [ $# -gt 0 ]; do
	case "$1" in
	--json) ;;
	-p) shift ;;
	--revert) action=revert ;;
	--revert-all=*) action=revert-all ;;
	--trusted=*) echo "${1#--trusted=}" >"$dir/trusted" ;;
	--activate) : >"$dir/activate" ;;
	*) patch=$1 ;;
	esac
	shift
done
[ "$action" = revert-all ] && [ -n "$patch" ] && action=apply
case "$cmd" in
trigger)
	id=$(basename "$(dirname "$patch")")
	echo "$action $id" >>"$dir/calls"
	case "$mode" in
	slow | slow-apply)
		if [ "$mode" = slow ] || [ "$action" = apply ]; then
			i=0
			while [ $i -lt 150 ] && [ "$(cat "$dir/mode")" = "$mode" ]; do
				sleep 0.2
				i=$((i + 1))
			done
		fi
		;;
	pause) echo "start" >>"$dir/trace"; sleep 1; echo "end" >>"$dir/trace" ;;
	crash) echo "fake agent: crashed" >&2; exit 2 ;;
	esac
	result=SUCCESS
	[ "$mode" = error ] && result=ERROR
	echo "login banner noise"
	echo '{"schema":"ulp.trigger/v1","type":"process","pid":4242,"comm":"app","patch":"'"$patch"'","patch_id":"'"$id"'","action":"'"$action"'","result":"'"$result"'","timings":{"total_us":10}}'
	echo '{"schema":"ulp.trigger/v1","type":"process","pid":4243,"comm":"other","patch":"'"$patch"'","patch_id":"'"$id"'","action":"'"$action"'","result":"SKIPPED","reason":"target library not loaded","timings":{}}'
	if [ "$result" = ERROR ]; then
		echo '{"schema":"ulp.trigger/v1","type":"summary","candidates":2,"patched":0,"skipped":1,"failed":1,"patches_applied":0,"inconsistent":0}'
		exit 1
	fi
	echo '{"schema":"ulp.trigger/v1","type":"summary","candidates":2,"patched":1,"skipped":1,"failed":0,"patches_applied":1,"inconsistent":0}'
	case "$action" in
	apply) echo "$id" >>"$ledger" ;;
	revert) grep -v "^$id\$" "$ledger" >"$ledger.new" 2>/dev/null; mv "$ledger.new" "$ledger" ;;
	revert-all) : >"$ledger" ;;
	esac
	;;
patches)
	list=""
	if [ -s "$ledger" ]; then
		for id in $(cat "$ledger"); do
			list="$list${list:+,}"'{"id":"'"$id"'","container":"'"$dir/patches/$id"'","target":"libfake.so.1","applied_at":"2026-11-27T10:00:00Z","functions":1}'
		done
	fi
	echo '{"schema":"ulp.patches/v1","pid":4242,"comm":"app","livepatchable_libraries":["libfake.so.1"],"patches":['"$list"']}'
	echo '{"schema":"ulp.patches/v1","pid":4243,"comm":"other","livepatchable_libraries":["libc.so.6"],"patches":[]}'
	;;
messages)
	echo '{"schema":"ulp.messages/v1","pid":4242,"comm":"app","messages":["libpulp loaded (version 0.1.0)"'"$(for id in $(cat "$ledger" 2>/dev/null); do printf ',"ulp: applied %s"' "$id"; done)"']}'
	echo '{"schema":"ulp.messages/v1","pid":4243,"comm":"other","messages":[],"error":"cannot read process: permission denied"}'
	exit 1
	;;
*)
	echo "fake agent: unknown command $cmd" >&2
	exit 2
	;;
esac
