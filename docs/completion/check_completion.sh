#!/usr/bin/env bash
# Loads the bash completion for tern in a clean bash and checks that it completes real things:
# commands, options, option values, and peer, contact and message names of a real node home.
# Usage: check_completion.sh TERN COMPLETION_SCRIPT
# $BASH_COMPLETION_SCRIPT: bash-completion's main script, if not in /usr/share/bash-completion.
set -euo pipefail

if [[ ${1:-} == --inner ]]; then
	# ---- inside bash --norc: $2 is plain or bash-completion ----------------------------
	# Completion functions run in an interactive shell's settings, not a script's.
	set +euo pipefail
	mode=$2
	if [[ $mode == bash-completion ]]; then
		# shellcheck disable=SC1090
		source "$BASH_COMPLETION_SCRIPT"
	fi
	# shellcheck disable=SC1090
	errors=$(source "$COMPLETION" 2>&1 >/dev/null) || true
	# Sourced once more for real (the first, in a subshell, only caught its stderr).
	# shellcheck disable=SC1090
	source "$COMPLETION"
	fails=0
	if [[ -n $errors ]]; then
		echo "FAIL [$mode]: sourcing printed: $errors"
		fails=1
	fi
	if ! complete -p tern >/dev/null 2>&1; then
		echo "FAIL [$mode]: no completion registered for tern"
		exit 1
	fi

	# complete_line WORD... : the words of the command line, the last one being completed.
	complete_line()
	{
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_tern tern "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]:-}"
	}
	# want WANT... -- WORD...: every word of WANT is offered.
	want()
	{
		local want=() w got
		while [[ $1 != -- ]]; do
			want+=("$1")
			shift
		done
		shift
		complete_line "$@"
		got=" ${COMPREPLY[*]:-} "
		for w in "${want[@]}"; do
			if [[ $got != *" $w "* ]]; then
				echo "FAIL [$mode]: '$*' offers [${COMPREPLY[*]:-}], not '$w'"
				fails=$((fails + 1))
				return
			fi
		done
		echo "ok   [$mode]: '$*' -> ${COMPREPLY[*]}"
	}
	# want_none WORD...: nothing is offered.
	want_none()
	{
		complete_line "$@"
		if ((${#COMPREPLY[@]})); then
			echo "FAIL [$mode]: '$*' offers [${COMPREPLY[*]}], expected nothing"
			fails=$((fails + 1))
		else
			echo "ok   [$mode]: '$*' -> nothing"
		fi
	}

	T=$TERN
	# Every command of `tern --help`, and every long option of its usage, is known.
	while read -r cmd _; do
		want "$cmd" -- "$T" "$cmd"
		for opt in $("$T" "$cmd" --help | head -n 1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
			[[ $opt == --home ]] && continue
			if ! grep -q -- "$opt\b" "$COMPLETION"; then
				echo "FAIL [$mode]: \`tern $cmd --help\` has $opt; the completion does not"
				fails=$((fails + 1))
			fi
		done
	done < <("$T" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
	want send -- "$T" se
	want --priority -- "$T" send --pri
	want --home --version -- "$T" --
	want bulk normal urgent -- "$T" send hub --priority ""
	want urgent -- "$T" send hub --priority = u
	want urgent -- "$T" export /media/stick --min-priority u
	want add list remove -- "$T" peer ""
	want add list remove -- "$T" --home "$A" contact ""
	want --json -- "$T" peer list ""
	want none rtscts dtrdsr -- "$T" peer add hub tern1x --serial /dev/ttyUSB0 --flow ""
	want 8N1 8E1 -- "$T" peer add hub tern1x --framing ""
	want --sneakernet --addr --serial -- "$T" peer add hub tern1x ""
	want error warn info debug -- "$T" run --log-level ""
	want auto trusted untrusted -- "$T" init --clock ""
	want ingest outbox -- "$T" sbd ""
	want check show -- "$T" config ""
	want --json -- "$T" config show --
	# Names of the node home on the command line, or of $TERN_HOME.
	want bob -- "$T" --home "$A" peer remove ""
	want bob -- "$T" --home = "$A" peer remove b
	want bob carol -- "$T" --home "$A" send ""
	want bob,carol -- "$T" --home "$A" send bob,c
	want bob -- "$T" --home "$A" export /media/stick --for ""
	want bob -- "$T" --home "$A" route add default ""
	want default bob carol -- "$T" --home "$A" route add ""
	want default -- "$T" --home "$A" route remove ""
	want bob -- "$T" --home "$A" sbd outbox ""
	TERN_HOME=$A want bob -- "$T" peer remove ""
	want "$MSG" -- "$T" --home "$B" read ""
	want "$MSG" -- "$T" --home "$B" save ""
	# Files and directories where a FILE or DIR is expected.
	want "$FILES/report.txt" -- "$T" send bob --file "$FILES/rep"
	want "$FILES/sub" -- "$T" export "$FILES/s"
	want "$FILES/report.txt" -- "$T" backup "$FILES/rep"
	# A protected key without $TERN_PASSPHRASE_FILE gives no names, and asks nothing.
	start=$SECONDS
	out=$(
		unset TERN_PASSPHRASE_FILE
		want_none "$T" --home "$P" peer remove ""
	)
	echo "$out"
	[[ $out == ok* ]] || fails=$((fails + 1))
	if ((SECONDS - start > 5)); then
		echo "FAIL [$mode]: completing on a protected key took $((SECONDS - start)) s"
		fails=$((fails + 1))
	fi
	TERN_PASSPHRASE_FILE=$PASSFILE want hub -- "$T" --home "$P" peer remove ""
	exit $((fails > 0))
fi

# ---- outside: two node homes, a protected one, a message, then the checks -----------------
[[ $# -eq 2 ]] || {
	echo "usage: $0 TERN COMPLETION_SCRIPT" >&2
	exit 2
}
TERN=$(realpath "$1")
COMPLETION=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TERN COMPLETION
export A=$tmp/a B=$tmp/b C=$tmp/c P=$tmp/p FILES=$tmp/files PASSFILE=$tmp/pass
unset TERN_HOME TERN_PASSPHRASE_FILE
for h in "$A" "$B" "$C"; do
	"$TERN" --home "$h" init >/dev/null
done
printf 'five random words for a test\n' >"$PASSFILE"
TERN_PASSPHRASE_FILE=$PASSFILE "$TERN" --home "$P" init >/dev/null
ida=$("$TERN" --home "$A" id | head -n 1)
idb=$("$TERN" --home "$B" id | head -n 1)
idc=$("$TERN" --home "$C" id | head -n 1)
"$TERN" --home "$A" contact add bob "$idb" >/dev/null
"$TERN" --home "$A" contact add carol "$idc" >/dev/null
"$TERN" --home "$A" peer add bob "$idb" --sneakernet >/dev/null
"$TERN" --home "$A" route add default bob >/dev/null
"$TERN" --home "$B" contact add alice "$ida" >/dev/null
TERN_PASSPHRASE_FILE=$PASSFILE "$TERN" --home "$P" peer add hub "$idb" >/dev/null
# One message in B's inbox, by raw bundle files.
mkdir -p "$tmp/bundles" "$FILES/sub"
: >"$FILES/report.txt"
"$TERN" --home "$A" send bob -m "completion test" >/dev/null 2>&1
"$TERN" --home "$A" bundle export "$tmp/bundles" >/dev/null 2>&1
"$TERN" --home "$B" bundle import "$tmp/bundles"/*.bundle >/dev/null 2>&1
MSG=$("$TERN" --home "$B" inbox | head -n 1 | cut -d ' ' -f 1)
export MSG
[[ $MSG =~ ^[0-9a-f]{12}$ ]] || {
	echo "setup: no message in the inbox ($MSG)" >&2
	exit 1
}

status=0
bash --norc --noprofile "$0" --inner plain || status=1
# With bash-completion's helpers (_filedir) too, when it is installed.
export BASH_COMPLETION_SCRIPT=${BASH_COMPLETION_SCRIPT:-/usr/share/bash-completion/bash_completion}
if [[ -f $BASH_COMPLETION_SCRIPT ]]; then
	bash --norc --noprofile "$0" --inner bash-completion || status=1
else
	echo "skip [bash-completion]: $BASH_COMPLETION_SCRIPT is not installed"
fi
exit $status
