#!/usr/bin/env bash
# run_test.sh: check, test, demo and benchmark the finonex ETL (server, client, processor)
# against a real PostgreSQL, on a developer's machine, in CI, or on a fresh Debian box.
#
# Usage:
#   ./run_test.sh [test] [go test args...]  gofmt, go vet, go test -count=1 -race
#                                           (args replace ./... when they name packages)
#   ./run_test.sh demo [events-file]        build the three programs and run them end to end
#                                           on events.jsonl, then print each user's revenue
#   ./run_test.sh bench [-short]            the benchmark suite: every stage against a ceiling
#                                           measured in the same run, as one table
#   ./run_test.sh bench ./internal/...      those packages' micro-benchmarks
#   ./run_test.sh help                      this text
#
# Which PostgreSQL (first that applies):
#   1. DATABASE_URL, when set: a server where the user may CREATE and DROP databases.
#   2. A server answering on 127.0.0.1:5432, as
#      postgres://postgres:1234@127.0.0.1:5432/postgres?sslmode=disable
#      (the password is ignored under trust auth and is the documented default otherwise).
#   3. A throwaway server of the script's own, started from the machine's PostgreSQL binaries
#      (installed with apt-get when missing and running as root) on 127.0.0.1 only, in a
#      temporary directory that is deleted, with the server stopped, when the script exits.
# FINONEX_OWN_PG=1 forces 3. The chosen URL is exported to the tests as
# FINONEX_TEST_DATABASE_URL: an admin connection on which tests create and drop their own
# databases. The script never touches a database named finonex; the demo uses finonex_demo.
# KEEP=1 keeps the temporary directories (build output, demo work dir, throwaway server's
# data and log) for inspection.
set -euo pipefail

# Run from the repository root, wherever the script is called from.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

readonly DEFAULT_LOCAL_URL='postgres://postgres:1234@127.0.0.1:5432/postgres?sslmode=disable'
readonly DEMO_DB='finonex_demo'
readonly DEMO_SECRET='demo-secret'

MODE=''           # test, demo or bench
STEP='start'      # what the script is doing, for the failure summary
PG_URL=''         # admin URL of the PostgreSQL in use
PG_DESC=''        # one line saying which PostgreSQL that is
PG_BIN=''         # directory of initdb, pg_ctl, postgres (own server only)
PG_TMP=''         # temporary directory of the throwaway server
PG_DATA=''        # its data directory
SERVER_PID=''     # demo: pid of the background server
PROCESSOR_PID=''  # demo: pid of the watching processor
WORK=''           # demo: working directory (server log, server's events file)
RACE_NOTE=''      # test: how go test ran, for the summary
TMP_DIRS=()       # temporary directories to delete on exit

say() { printf '==> %s\n' "$*"; }
warn() { printf 'run_test.sh: warning: %s\n' "$*" >&2; }
die() {
	printf 'run_test.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<'EOF'
Usage: ./run_test.sh [MODE] [ARGS...]

Modes:
  test [go test args]   (default) gofmt -l, go vet ./..., go test -count=1 -race ./...,
                        then a short fuzz run of each decoder and the token verifier
                        Args are passed to go test; when they name packages (./x/..., finonex/x)
                        they replace ./..., e.g. ./run_test.sh test -run TestX ./internal/...
  demo [events-file]    build server, client and processor, run them end to end on
                        events.jsonl (or events-file) against database finonex_demo, and
                        print every user's revenue
  bench [-short]        the benchmark suite (bench_test.go): every stage of the pipeline
                        against a ceiling measured in the same run, printed as one table;
                        -short runs a tenth of the full size
  bench PACKAGES        those packages' micro-benchmarks, e.g. ./run_test.sh bench ./internal/...
  containers            build the image, start compose.yaml under a unique project, send the
                        events, SIGKILL the server mid-send, check every total, clean up
                        (docker compose or podman-compose; not part of test or CI)
  help, -h              this text

PostgreSQL, first that applies:
  DATABASE_URL          use this server (the user must be allowed to create databases)
  127.0.0.1:5432        a server answering there, as postgres:1234 (trust auth or default)
  own throwaway server  from the machine's PostgreSQL binaries (apt-get install postgresql
                        when missing and root), on 127.0.0.1, removed on exit
Environment:
  FINONEX_OWN_PG=1      always start the throwaway server
  KEEP=1                keep temporary directories (build output, demo work dir, server data)
The tests get the server as FINONEX_TEST_DATABASE_URL; they create and drop their own databases.
EOF
}

# ---------------------------------------------------------------------------------------------
# Cleanup: runs on every exit, normal or not.

# stop_child NAME PID: SIGTERM, then dies unless the child exits with status 0 within 15 s.
stop_child() {
	local name=$1 pid=$2 rc=0
	kill -TERM "$pid"
	wait_gone "$pid" 15 || die "the $name did not stop within 15 s of SIGTERM"
	wait "$pid" || rc=$?
	[[ $rc -eq 0 ]] || die "the $name exited with status $rc after SIGTERM"
}

cleanup() {
	local rc=$?
	set +e
	local pid
	for pid in "$PROCESSOR_PID" "$SERVER_PID"; do
		if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
		fi
	done
	if [[ $rc -ne 0 && $MODE == demo && -n ${WORK:-} && -s $WORK/server.log ]]; then
		printf '\n--- last lines of %s ---\n' "$WORK/server.log" >&2
		tail -n 40 "$WORK/server.log" >&2
		if [[ -s $WORK/processor.log ]]; then
			printf '\n--- last lines of %s ---\n' "$WORK/processor.log" >&2
			tail -n 20 "$WORK/processor.log" >&2
		fi
	fi
	stop_own_pg
	local d
	for d in ${TMP_DIRS[@]+"${TMP_DIRS[@]}"}; do
		if [[ ${KEEP:-} == 1 ]]; then
			say "KEEP=1: kept $d"
		else
			rm -rf -- "$d"
		fi
	done
	if [[ $MODE == test ]]; then
		echo
		if [[ $rc -eq 0 ]]; then
			printf 'run_test.sh: PASS: gofmt, go vet, go test%s in %ds; PostgreSQL: %s\n' \
				"$RACE_NOTE" "$SECONDS" "$PG_DESC"
		else
			printf 'run_test.sh: FAIL at %s (exit %d) after %ds\n' "$STEP" "$rc" "$SECONDS"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
# Turn Ctrl-C and kill into a normal exit so that cleanup runs.
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_gone PID SECONDS: wait for a process to end; false if it is still running after that.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	! kill -0 "$1" 2>/dev/null
}

# new_tmp_dir VAR PREFIX [PARENT]: make a temporary directory, deleted on exit, and store its
# path in VAR. (Not through $(...): a subshell could not record it for cleanup.)
new_tmp_dir() {
	local d
	d="$(mktemp -d "${3:-${TMPDIR:-/tmp}}/$2.XXXXXX")"
	TMP_DIRS+=("$d")
	printf -v "$1" '%s' "$d"
}

# ---------------------------------------------------------------------------------------------
# Tools.

need_go() {
	if ! command -v go >/dev/null 2>&1; then
		# The official tarball installs here, but only login shells get it on PATH.
		if [[ -x /usr/local/go/bin/go ]]; then
			PATH="/usr/local/go/bin:$PATH"
		else
			die "go not found on PATH: install Go (go.mod asks for $(sed -n 's/^go //p' go.mod) or newer) and put its bin directory on PATH"
		fi
	fi
	say "Go: $(go version)"
}

# redact URL: the URL with its password replaced by ***, for printing.
redact() { printf '%s\n' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#; s#(password=)[^ ]*#\1***#'; }

# url_with_db URL DB: the same connection string naming database DB instead.
url_with_db() {
	local url=$1 db=$2
	if [[ $url != *://* ]]; then # keyword=value form: host=... dbname=...
		if [[ $url =~ (^|[[:space:]])dbname=[^[:space:]]* ]]; then
			printf '%s\n' "$url" | sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\1dbname=$db/"
		else
			printf '%s dbname=%s\n' "$url" "$db"
		fi
		return
	fi
	local query='' base=$url
	if [[ $base == *\?* ]]; then
		query="?${base#*\?}"
		base=${base%%\?*}
	fi
	local scheme=${base%%://*} rest=${base#*://}
	printf '%s://%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
}

# find_psql: print the path of a psql, from PATH or the PostgreSQL binaries; false if none.
find_psql() {
	local p
	if p="$(command -v psql 2>/dev/null)"; then
		printf '%s\n' "$p"
		return 0
	fi
	for p in "$PG_BIN/psql" $(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -rV); do
		[[ -x $p ]] && printf '%s\n' "$p" && return 0
	done
	return 1
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
	# shellcheck disable=SC2016 # $0 and $1 are the inner shell's, on purpose
	if command -v timeout >/dev/null 2>&1; then
		timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
	else
		bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
	fi
}

# ---------------------------------------------------------------------------------------------
# Provisioning PostgreSQL. Sets PG_URL and PG_DESC and exports FINONEX_TEST_DATABASE_URL.

provision_pg() {
	STEP='provisioning PostgreSQL'
	if [[ ${FINONEX_OWN_PG:-} == 1 ]]; then
		if [[ -n ${DATABASE_URL:-} ]]; then warn "FINONEX_OWN_PG=1: ignoring DATABASE_URL"; fi
		start_own_pg
	elif [[ -n ${DATABASE_URL:-} ]]; then
		PG_URL=$DATABASE_URL
		PG_DESC="DATABASE_URL $(redact "$PG_URL")"
		if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -t 5 -d "$PG_URL"; then
			die "DATABASE_URL is set but no PostgreSQL answers there: $(redact "$PG_URL")"
		fi
	elif local_pg_usable; then
		PG_URL=$DEFAULT_LOCAL_URL
		PG_DESC="local server on 127.0.0.1:5432 ($(redact "$PG_URL"))"
	else
		start_own_pg
	fi
	export FINONEX_TEST_DATABASE_URL=$PG_URL
	say "PostgreSQL: $PG_DESC"
}

# local_pg_usable: true when a PostgreSQL answers on 127.0.0.1:5432 and, when psql is at hand
# to check, lets postgres:1234 in.
local_pg_usable() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -h 127.0.0.1 -p 5432 || return 1
	else
		tcp_open 127.0.0.1 5432 || return 1
	fi
	local psql out
	psql="$(find_psql)" || return 0 # cannot check the login: let the tests tell
	if ! out="$(PGCONNECT_TIMEOUT=5 "$psql" -X -Atq -d "$DEFAULT_LOCAL_URL" -c 'select 1' 2>&1)"; then
		warn "a PostgreSQL answers on 127.0.0.1:5432 but did not let postgres:1234 in ($out); starting a throwaway server instead (or set DATABASE_URL)"
		return 1
	fi
}

# find_pg_bin: set PG_BIN to a directory holding initdb, pg_ctl and postgres; false if none.
find_pg_bin() {
	local d p
	# Debian keeps the server binaries here, one directory per major version: take the newest.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			PG_BIN=$d
			return 0
		fi
	done
	# Elsewhere (other distributions, Homebrew) they are on PATH.
	for p in "$(command -v initdb 2>/dev/null)" "$(command -v pg_config >/dev/null 2>&1 && pg_config --bindir)/initdb"; do
		[[ -n $p && -x $p ]] || continue
		d="$(dirname "$(readlink -f "$p")")"
		if [[ -x $d/pg_ctl && -x $d/postgres ]]; then
			PG_BIN=$d
			return 0
		fi
	done
	return 1
}

no_pg_help() {
	die "no PostgreSQL to test against: $1.
This script needs one of:
  - DATABASE_URL set to a PostgreSQL server where the user may create databases, e.g.
      DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/postgres?sslmode=disable' ./run_test.sh
  - a PostgreSQL listening on 127.0.0.1:5432 that accepts postgres:1234 (or trust auth)
  - PostgreSQL's server binaries installed (Debian: sudo apt-get install postgresql), so the
    script can start a throwaway server of its own"
}

# install_pg: install Debian's PostgreSQL when root with apt-get; false otherwise.
install_pg() {
	[[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
	say "PostgreSQL server binaries not found: installing Debian's package 'postgresql' (apt-get update; apt-get install -y --no-install-recommends postgresql)"
	say "(the package may also start a system server of its own on port 5432; this script still uses its own throwaway server)"
	apt-get update || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql || return 1
}

# install_curl: install Debian's curl, which the demo asks the server with, when root with
# apt-get; false otherwise.
install_curl() {
	[[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
	say "curl not found: installing Debian's package 'curl' (apt-get update; apt-get install -y --no-install-recommends curl)"
	apt-get update || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl || return 1
}

# as_pg CMD...: run a command as the user that owns the throwaway server. PostgreSQL refuses
# to run as root, so root runs it as the postgres system user.
as_pg() {
	if [[ $EUID -ne 0 ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
	fi
}

# ensure_pg_user: when root, make sure the postgres system user exists.
ensure_pg_user() {
	[[ $EUID -eq 0 ]] || return 0
	id -u postgres >/dev/null 2>&1 && return 0
	say "creating system user postgres to run the throwaway server (PostgreSQL refuses to run as root)"
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin postgres
	elif command -v adduser >/dev/null 2>&1; then
		adduser --system --group --no-create-home --home /nonexistent postgres
	else
		die "running as root, the throwaway PostgreSQL needs a postgres system user, and neither useradd nor adduser is here to create it"
	fi
}

start_own_pg() {
	if ! find_pg_bin; then
		install_pg || no_pg_help "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found under /usr/lib/postgresql/*/bin or on PATH, and installing them failed or was not possible (the script installs them only as root with apt-get)"
		find_pg_bin || no_pg_help "PostgreSQL was installed but initdb still was not found"
	fi
	say "starting a throwaway PostgreSQL from $PG_BIN"
	ensure_pg_user

	new_tmp_dir PG_TMP finonex-pg
	if [[ $EUID -eq 0 ]]; then
		chown postgres "$PG_TMP"
		# TMPDIR may sit under a directory the postgres user cannot reach (say /root).
		if ! as_pg test -w "$PG_TMP"; then
			new_tmp_dir PG_TMP finonex-pg /tmp
			chown postgres "$PG_TMP"
		fi
	fi
	PG_DATA=$PG_TMP/data

	# Trust auth, because only this machine's users can reach 127.0.0.1 and the socket, and
	# the server lives for one run. Locale C works on every machine, installed locales or not.
	if ! (cd "$PG_TMP" && as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust \
		-E UTF8 --locale=C --no-sync >"$PG_TMP/initdb.log" 2>&1); then
		cat "$PG_TMP/initdb.log" >&2
		die "initdb failed (output above)"
	fi

	# Only on 127.0.0.1, with the socket in the temporary directory, so that nothing clashes
	# with a system server's socket in /var/run/postgresql.
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '${PG_TMP//\'/\'\'}'"
		if [[ $MODE != bench ]]; then
			# Safe to lose on a crash: the data is thrown away anyway. Not for benchmarks,
			# whose numbers should come from a server that writes to disk like a real one.
			echo 'fsync = off'
			echo 'synchronous_commit = off'
			echo 'full_page_writes = off'
		fi
	} >>"$PG_DATA/postgresql.conf"

	# Try a few ports, as another program may take one between the check and the start.
	local port started=''
	for port in 54329 54339 54349 54359 54369; do
		tcp_open 127.0.0.1 "$port" && continue
		if (cd "$PG_TMP" && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/postgres.log" \
			-o "-p $port" -w -t 60 start >/dev/null 2>&1); then
			started=$port
			break
		fi
		grep -q 'could not bind\|already in use' "$PG_TMP/postgres.log" 2>/dev/null || break
	done
	if [[ -z $started ]]; then
		tail -n 30 "$PG_TMP/postgres.log" >&2 2>/dev/null || true
		die "could not start the throwaway PostgreSQL (log above: $PG_TMP/postgres.log)"
	fi

	PG_URL="postgres://postgres@127.0.0.1:$started/postgres?sslmode=disable"
	if [[ -x $PG_BIN/pg_isready ]]; then
		local i
		for ((i = 0; i < 100; i++)); do
			"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$started" && break
			sleep 0.1
		done
		"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$started" ||
			die "the throwaway PostgreSQL started but does not answer on 127.0.0.1:$started (log: $PG_TMP/postgres.log)"
	fi
	say "throwaway PostgreSQL is up: data and log in $PG_TMP"
	PG_DESC="throwaway server $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') on 127.0.0.1:$started ($PG_URL)"
}

# stop_own_pg: stop the throwaway server, if this script started one.
stop_own_pg() {
	[[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]] || return 0
	local pid
	pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)"
	(cd "$PG_TMP" && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1)
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
		# pg_ctl could not stop it: end the postmaster this script started, by its pid.
		kill -TERM "$pid" 2>/dev/null
		wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
	fi
	say "stopped the throwaway PostgreSQL"
}

# ---------------------------------------------------------------------------------------------
# go test arguments.

# names_packages ARGS...: true when an argument looks like a package pattern rather than a
# flag or a flag's value, so that ./... is not added.
names_packages() {
	local a
	for a in "$@"; do
		case $a in
		./* | ../* | /* | . | .. | finonex | finonex/*) return 0 ;;
		esac
	done
	return 1
}

# ---------------------------------------------------------------------------------------------
# Modes.

mode_test() {
	need_go
	provision_pg

	STEP='gofmt -l .'
	say "$STEP"
	local unformatted
	unformatted="$(gofmt -l .)"
	if [[ -n $unformatted ]]; then
		printf '%s\n' "$unformatted" >&2
		die "these files need gofmt -w (listed above)"
	fi

	STEP='go vet ./...'
	say "$STEP"
	go vet ./...

	# The race detector needs cgo, and cgo a C compiler: without one, say so loudly and test
	# without it rather than not at all.
	local race=(-race)
	RACE_NOTE=' -race'
	if [[ "$(go env CGO_ENABLED)" != 1 ]]; then
		warn "cgo is off (no C compiler? Debian: apt-get install gcc): running go test WITHOUT -race"
		race=()
		RACE_NOTE=' (without -race: cgo off)'
	fi
	local args=("$@")
	names_packages "$@" || args+=(./...)
	STEP="go test -count=1${race[*]:+ ${race[*]}} ${args[*]}"
	say "$STEP"
	go test -count=1 ${race[@]+"${race[@]}"} "${args[@]}"

	# The seed corpora ran above as plain tests; here the decoders and the token verifier also
	# get a short coverage-guided run each. FUZZTIME=0 skips it (a run narrowed to packages
	# skips it too).
	names_packages "$@" && return
	local fuzztime=${FUZZTIME:-8s} target
	[[ $fuzztime == 0 ]] && return
	for target in ./internal/token:FuzzVerify ./internal/token:FuzzClaims ./internal/event:FuzzParse \
		./internal/event:FuzzScanner ./internal/prom:FuzzParse; do
		STEP="go test -fuzz ${target#*:} -fuzztime $fuzztime ${target%%:*}"
		say "$STEP"
		go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1x "${target%%:*}"
	done
}

# mode_bench runs the benchmark suite (BenchmarkSuite in bench_test.go: every stage against
# a ceiling measured in the same run, printed as one table), or, when the args name packages,
# those packages' micro-benchmarks.
mode_bench() {
	need_go
	provision_pg
	if names_packages "$@"; then
		STEP="go test -run '^\$' -bench . -benchmem $*"
		say "$STEP"
		go test -run '^$' -bench . -benchmem "$@"
		return
	fi
	STEP="go test -run '^\$' -bench '^BenchmarkSuite\$' -benchtime 1x -timeout 90m $* ."
	say "$STEP"
	go test -run '^$' -bench '^BenchmarkSuite$' -benchtime 1x -timeout 90m "$@" .
}

# demo_users FILE: the distinct userIds of an events file, without jq. Undoes the escapes \"
# and \\ only: enough for the sample, whose ids are plain ASCII.
demo_users() {
	(grep -oE '"userId"[[:space:]]*:[[:space:]]*"([^"\\]|\\.)*"' "$1" || true) |
		sed -E 's/^"userId"[[:space:]]*:[[:space:]]*"//; s/"$//; s/\\(["\\])/\1/g' | LC_ALL=C sort -u
}

# urlencode STRING: percent-encode everything but unreserved characters, byte by byte.
urlencode() {
	local LC_ALL=C s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) out+="$(printf '%%%02X' "'$c")" ;;
		esac
	done
	printf '%s\n' "$out"
}

# run_bounded SECONDS CMD...: run CMD, failing after SECONDS when coreutils' timeout exists.
run_bounded() {
	local secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then
		timeout "$secs" "$@"
	else
		"$@"
	fi
}

mode_demo() {
	local events=${1:-events.jsonl}
	[[ $# -le 1 ]] || die "demo takes at most one argument, the events file"
	[[ -f $events ]] || die "demo: events file $events not found"
	events="$(cd "$(dirname "$events")" && pwd)/$(basename "$events")"
	command -v curl >/dev/null 2>&1 || install_curl || die "demo needs curl (Debian: apt-get install curl)"
	need_go
	provision_pg

	local demo_dsn psql
	demo_dsn="$(url_with_db "$PG_URL" "$DEMO_DB")"
	STEP="dropping database $DEMO_DB"
	if psql="$(find_psql)"; then
		say "dropping database $DEMO_DB if it exists, so the demo starts empty"
		if ! "$psql" -X -q -v ON_ERROR_STOP=1 -d "$PG_URL" \
			-c "DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE)" 2>/dev/null &&
			! "$psql" -X -q -v ON_ERROR_STOP=1 -d "$PG_URL" -c "DROP DATABASE IF EXISTS $DEMO_DB"; then
			warn "could not drop $DEMO_DB: revenue from earlier demo runs may add up"
		fi
	else
		warn "psql not found: could not drop $DEMO_DB first; if an earlier demo left it, its revenue adds up"
	fi

	STEP='building server, client and processor'
	say "$STEP"
	local bin p
	new_tmp_dir bin finonex-bin
	for p in server client processor; do
		go build -o "$bin/$p" "./$p"
	done
	new_tmp_dir WORK finonex-demo

	STEP='starting the server'
	say "starting server (log: $WORK/server.log, events: $WORK/server_events.jsonl, database: $DEMO_DB)"
	"$bin/server" -addr 127.0.0.1:0 -events-file "$WORK/server_events.jsonl" \
		-db "$demo_dsn" -secret "$DEMO_SECRET" >>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!

	# The server picks a free port and logs it as msg=listening addr=127.0.0.1:PORT.
	local addr='' i
	for ((i = 0; i < 300; i++)); do
		addr="$(sed -n 's/.*msg=listening.* addr="\{0,1\}\([^" ]*\).*/\1/p' "$WORK/server.log" | head -n 1)"
		[[ -n $addr ]] && break
		kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it listened"
		sleep 0.1
	done
	[[ -n $addr ]] || die "the server did not log 'msg=listening addr=...' within 30 s"
	say "server listening on $addr"
	for ((i = 0; i < 150; i++)); do
		curl -fsS --max-time 2 "http://$addr/healthz" >/dev/null 2>&1 && break
		kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before /healthz answered"
		sleep 0.1
	done
	curl -fsS --max-time 2 "http://$addr/healthz" >/dev/null ||
		die "http://$addr/healthz did not answer within 15 s"

	STEP='starting the processor'
	say "starting processor -watch -interval 1s (log: $WORK/processor.log)"
	"$bin/processor" -watch -interval 1s -quiet -events-file "$WORK/server_events.jsonl" \
		-db "$demo_dsn" >>"$WORK/processor.log" 2>&1 &
	PROCESSOR_PID=$!

	STEP='running the client'
	say "client: sending $events"
	run_bounded 300 "$bin/client" -file "$events" -url "http://$addr" -secret "$DEMO_SECRET" ||
		die "the client failed (exit $?)"

	STEP='waiting for the watching processor'
	say "waiting for the watching processor to apply the events (no manual processor run)"
	local users applied=''
	users="$(demo_users "$events")"
	for ((i = 0; i < 300; i++)); do
		applied="$(grep -c '^applied ' "$WORK/processor.log" 2>/dev/null || true)"
		if [[ ${applied:-0} -gt 0 ]] && ! ls "$WORK" | grep -qE '^server_events_.*[0-9a-f]{8}\.jsonl$' &&
			[[ ! -s $WORK/server_events.jsonl ]]; then
			break
		fi
		kill -0 "$PROCESSOR_PID" 2>/dev/null || die "the processor exited while watching"
		sleep 0.1
	done
	[[ ${applied:-0} -gt 0 ]] || die "the watching processor applied nothing within 30 s"
	say "the processor applied $applied file(s) for $(grep -c . <<<"$users") users while watching"

	STEP='reading revenue'
	say "revenue per user (GET /userEvents/<userId>):"
	local user body revenue err
	printf '%-24s %12s\n' user revenue
	printf '%-24s %12s\n' '------------------------' '------------'
	while IFS= read -r user; do
		[[ -n $user ]] || continue
		if body="$(curl -fsS --max-time 5 -H "Authorization: $DEMO_SECRET" \
			"http://$addr/userEvents/$(urlencode "$user")" 2>"$WORK/curl.err")"; then
			revenue="$(printf '%s' "$body" | sed -n 's/.*"revenue"[[:space:]]*:[[:space:]]*\(-\{0,1\}[0-9][0-9]*\).*/\1/p' | head -n 1)"
			printf '%-24s %12s\n' "$user" "${revenue:-$(printf '%s' "$body" | tr -d '\n')}"
		else
			err="$(tr -d '\n' <"$WORK/curl.err")"
			printf '%-24s %12s  (%s)\n' "$user" '-' "$err"
		fi
	done <<<"$users"

	STEP='stopping the processor'
	say "stopping the processor (SIGTERM)"
	stop_child processor "$PROCESSOR_PID"
	PROCESSOR_PID=''

	STEP='stopping the server'
	say "stopping the server (SIGTERM)"
	stop_child server "$SERVER_PID"
	SERVER_PID=''
	say "server stopped cleanly"
	if [[ ${KEEP:-} == 1 ]]; then say "KEEP=1: server log and events file are in $WORK"; fi
	say "demo done"
}

# ---------------------------------------------------------------------------------------------

main() {
	local mode=${1:-test}
	case $mode in
	-h | --help) ;;
	-* | ./*) mode='test' ;; # ./run_test.sh -run TestX ./x/...: arguments for go test
	*) if (($# > 0)); then shift; fi ;;
	esac
	case $mode in
	test | demo | bench)
		MODE=$mode
		"mode_$mode" "$@"
		;;
	containers)
		MODE=$mode
		# shellcheck source=.ci/containers.sh
		. "$ROOT/.ci/containers.sh"
		mode_containers "$@"
		;;
	-h | --help | help)
		usage
		;;
	*)
		usage >&2
		printf '\nrun_test.sh: unknown mode %q\n' "$mode" >&2
		exit 2
		;;
	esac
}

main "$@"
