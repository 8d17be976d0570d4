# .ci/containers.sh: the container check, `./run_test.sh containers` (run_test.sh sources this
# file and calls mode_containers). It also runs on its own: bash .ci/containers.sh
#
# It builds the image from ./Dockerfile, starts compose.yaml under a unique project name on
# free ports (published on 127.0.0.1 only), waits for PostgreSQL, the server and the
# processor, sends the bundled events.jsonl through the client service and checks every
# user's revenue through GET. Then it sends a generated file (CT_EVENTS lines over CT_USERS
# users, totals known), kills the server container with SIGKILL once mid-send, starts it
# again, and checks that the totals are still exact. It stops the server and the processor,
# which must exit 0 within the 10 s grace, and removes every container, network, volume and
# image tag it made, also on failure or Ctrl-C; then it checks that none is left.
#
# Engine: docker with a running engine and compose v2 (`docker compose`), else podman with
# podman-compose; CT_ENGINE=docker or CT_ENGINE=podman chooses. The base images (golang:1.24,
# postgres:17, gcr.io/distroless/static-debian12:nonroot) must be present or pullable; podman
# builds with --pull=never. Not part of the default ./run_test.sh, nor of CI.
#
# Settings: CT_EVENTS (20000) and CT_USERS (50) size the generated file, CT_CONCURRENCY (16)
# is the client's for it; KEEP=1 keeps the work directory (logs, files) also on success.
#
# Everything here is named ct_* or CT_* and runs in a subshell, so that sourcing this file
# leaves run_test.sh's functions, variables and traps alone.

# mode_containers runs the whole check in a subshell: its traps, options and variables end
# with it.
mode_containers() (
	set -euo pipefail
	# The cleanup writes to the original stdout and stderr (8, 9) even when a signal arrives
	# inside a command whose output goes to /dev/null.
	exec 8>&1 9>&2
	trap ct_cleanup EXIT
	trap 'CT_FAIL="interrupted (SIGINT)"; exit 130' INT
	trap 'CT_FAIL="interrupted (SIGTERM)"; exit 143' TERM
	ct_main "$@"
)

ct_main() {
	if (($# > 0)); then
		ct_die "takes no arguments; the settings are environment variables (see .ci/containers.sh)"
	fi
	CT_WANT=${CT_ENGINE:-}
	CT_EVENTS=${CT_EVENTS:-20000}
	CT_USERS=${CT_USERS:-50}
	CT_CONCURRENCY=${CT_CONCURRENCY:-16}
	CT_STEP='start'  # what the check is doing, for the failure summary
	CT_PASSED=0      # 1 once every step passed
	CT_ENGINE=''     # docker or podman, once chosen
	CT_COMPOSE=()    # (docker compose) or (podman-compose)
	CT_PROJECT=''    # unique compose project name
	CT_TMP=''        # work directory: compose log, generated files, container logs
	CT_IMAGE=''      # the image tag this run builds, and removes at the end
	CT_NOTES=()      # result lines for the summary
	CT_FAIL=''       # why the check failed, first line
	CT_PORTS=''      # host ports chosen so far
	CT_PORT=''       # the server's, on 127.0.0.1
	CT_PROCESSOR_PORT=''
	CT_T0=$SECONDS
	CT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	cd "$CT_ROOT"

	ct_step 'choose a container engine'
	ct_detect_engine
	ct_setup
	ct_step 'check compose.yaml'
	ct_check_config
	ct_step 'build the image'
	ct_build_image
	ct_step 'start postgres, server and processor'
	ct_up
	ct_step 'wait for health'
	ct_wait_healthy
	ct_step 'send the bundled events through the client service'
	ct_send_bundled
	ct_step 'kill the server with SIGKILL mid-send'
	ct_sigkill_mid_send
	ct_step 'stop the server and the processor'
	ct_stop_clean
	CT_STEP='remove what the check made'
	CT_PASSED=1
}

# --- helpers ---------------------------------------------------------------------------------

ct_say() { printf '==> %s\n' "$*"; }
ct_note() { # a result line, printed now and again in the summary
	CT_NOTES+=("$*")
	ct_say "$*"
}
ct_die() {
	CT_FAIL=$(head -n 1 <<<"$*")
	printf 'containers: %s\n' "$*" >&2
	exit 1
}
ct_step() {
	CT_STEP=$1
	ct_say "$1"
}

# ct_wait SECONDS CMD...: runs CMD every half second until it succeeds (0), or SECONDS pass (1).
ct_wait() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.5
	done
}

# ct_poll SECONDS WHAT CMD...: ct_wait, failing the check, naming WHAT, on a timeout.
ct_poll() {
	local limit=$1 what=$2
	shift 2
	ct_wait "$limit" "$@" || ct_die "timed out after ${limit} s waiting for $what"
}

# ct_limit SECONDS CMD...: CMD, stopped after SECONDS (where coreutils' timeout exists).
ct_limit() {
	if command -v timeout >/dev/null; then
		timeout "$@"
	else
		"${@:2}"
	fi
}

# ct_compose ARGS...: compose on this project (5 minutes at most), its output appended to
# the compose log.
ct_compose() {
	ct_limit 300 "${CT_COMPOSE[@]}" -p "$CT_PROJECT" -f "$CT_ROOT/compose.yaml" "$@" >>"$CT_TMP/compose.log" 2>&1
}

# ct_ids [ps args]: the ids of the project's containers, running or not.
ct_ids() {
	"$CT_ENGINE" ps -aq --filter "label=com.docker.compose.project=$CT_PROJECT" "$@"
}

# ct_cid SERVICE: the id of the project's container of SERVICE.
ct_cid() {
	ct_ids --filter "label=com.docker.compose.service=$1" | head -n 1
}

# ct_running CONTAINER: whether it runs.
ct_running() {
	[[ $("$CT_ENGINE" inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}

# ct_http PORT PATH [curl args]: GET 127.0.0.1:PORT/PATH, failing on a status >= 400.
ct_http() {
	local port=$1 path=$2
	shift 2
	curl -fsS --max-time 5 "$@" "http://127.0.0.1:$port$path"
}

# ct_free_port VAR: sets VAR to a TCP port nothing listens on, outside Linux's ephemeral
# range and unlike the ones chosen before.
ct_free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		[[ " ${CT_PORTS:-} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			CT_PORTS="${CT_PORTS:-} $p"
			printf -v "$1" '%s' "$p"
			return
		fi
	done
}

# ct_totals FILE: each user's expected revenue in an events file, as "user<TAB>total" lines
# sorted by user. The files read here are one compact event per line, as events.jsonl is.
ct_totals() {
	awk '
	function field(re,   s) {
		if (!match($0, re)) return ""
		s = substr($0, RSTART, RLENGTH)
		sub(/^"[a-zA-Z]+"[ \t]*:[ \t]*"?/, "", s)
		sub(/"$/, "", s)
		return s
	}
	NF {
		u = field("\"userId\"[ \t]*:[ \t]*\"[^\"]*\"")
		n = field("\"name\"[ \t]*:[ \t]*\"[^\"]*\"")
		v = field("\"value\"[ \t]*:[ \t]*[0-9]+")
		total[u] += (n == "add_revenue" ? v : -v)
	}
	END { for (u in total) printf "%s\t%d\n", u, total[u] }' "$1" | LC_ALL=C sort
}

# ct_check_totals FILE: whether GET /userEvents/{user} answers every total of FILE (as
# ct_totals writes it); the differences go to $CT_TMP/mismatches.
ct_check_totals() {
	local user want body got bad=0
	: >"$CT_TMP/mismatches"
	while IFS=$'\t' read -r user want; do
		body=$(ct_http "$CT_PORT" "/userEvents/$user" -H "Authorization: $CT_SECRET" 2>&1) || body="($body)"
		got=$(sed -n 's/.*"revenue":\(-\{0,1\}[0-9]*\).*/\1/p' <<<"$body")
		if [[ $got != "$want" ]]; then
			printf '%s: want %s, GET says %s\n' "$user" "$want" "$body" >>"$CT_TMP/mismatches"
			bad=1
		fi
	done <"$1"
	return "$bad"
}

# ct_wait_totals FILE WHAT: waits (60 s at most) until every total of FILE is exact, and
# checks it again two processor intervals later: a late double count would show there.
ct_wait_totals() {
	local file=$1 what=$2 end=$((SECONDS + 60))
	until ct_check_totals "$file"; do
		if ((SECONDS >= end)); then
			ct_die "$what: revenue not exact after 60 s:"$'\n'"$(head -n 20 "$CT_TMP/mismatches")"
		fi
		sleep 1
	done
	sleep 2
	ct_check_totals "$file" || ct_die "$what: revenue changed after it was exact:"$'\n'"$(head -n 20 "$CT_TMP/mismatches")"
	ct_note "$what: revenue of all $(wc -l <"$file") users exact through GET"
}

# --- steps -----------------------------------------------------------------------------------

ct_detect_engine() {
	local docker_ok=0 podman_ok=0
	if command -v docker >/dev/null && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
		docker_ok=1
	fi
	if command -v podman >/dev/null && command -v podman-compose >/dev/null; then
		podman_ok=1
	fi
	case $CT_WANT in
	docker) ((docker_ok)) || ct_die "CT_ENGINE=docker, but docker with a running engine and 'docker compose' (v2) is not available" ;;
	podman) ((podman_ok)) || ct_die "CT_ENGINE=podman, but podman and podman-compose are not both installed" ;;
	'') ;;
	*) ct_die "CT_ENGINE must be docker or podman, not '$CT_WANT'" ;;
	esac
	if [[ $CT_WANT != podman ]] && ((docker_ok)); then
		CT_ENGINE=docker
		CT_COMPOSE=(docker compose)
	elif ((podman_ok)); then
		CT_ENGINE=podman
		CT_COMPOSE=(podman-compose)
	else
		cat >&2 <<-'EOF'
			containers: no container engine to run the check with. Install one of:
			  - Docker Engine with the compose v2 plugin: `docker info` and `docker compose version`
			    must both work (https://docs.docker.com/engine/install/);
			  - podman and podman-compose: apt-get install podman podman-compose (Debian, Ubuntu),
			    dnf install podman podman-compose (Fedora).
		EOF
		CT_FAIL='no container engine: docker with compose v2, or podman with podman-compose'
		exit 1
	fi
	ct_note "engine: $CT_ENGINE, compose: ${CT_COMPOSE[*]} (version $("${CT_COMPOSE[@]}" version 2>/dev/null | grep -i 'compose.*version' | head -n 1 | sed 's/.*[Vv]ersion *//'))"
}

ct_setup() {
	command -v curl >/dev/null || ct_die "curl is needed (apt-get install curl)"
	CT_PROJECT="finonex-test-$$-$RANDOM"
	CT_IMAGE="finonex-test:$CT_PROJECT"
	CT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$CT_PROJECT.XXXXXX")
	# The client container runs as uid 65532 and reads the generated file from here.
	chmod 755 "$CT_TMP"
	# Anonymous volumes have no project in their name: new ones are looked for at the end.
	"$CT_ENGINE" volume ls -q >"$CT_TMP/volumes.before" 2>/dev/null || true
	ct_free_port CT_PORT
	ct_free_port CT_PROCESSOR_PORT
	CT_SECRET="test-secret-$RANDOM$RANDOM"
	# What compose.yaml reads; anything else from the caller's environment is left out.
	export FINONEX_IMAGE=$CT_IMAGE FINONEX_BIND=127.0.0.1 FINONEX_PORT=$CT_PORT \
		FINONEX_PROCESSOR_PORT=$CT_PROCESSOR_PORT FINONEX_SECRET=$CT_SECRET \
		POSTGRES_PASSWORD="test-password-$RANDOM$RANDOM" COMPOSE_PROFILES=client
	unset DATABASE_URL COMPOSE_FILE COMPOSE_PROJECT_NAME
	if [[ -f .env ]]; then
		ct_say "note: ./.env exists; compose reads it (podman-compose even over the environment)"
	fi
	ct_say "project $CT_PROJECT: server on 127.0.0.1:$CT_PORT, processor on 127.0.0.1:$CT_PROCESSOR_PORT, work directory $CT_TMP"
}

ct_check_config() {
	local out=$CT_TMP/config.out
	if [[ $CT_ENGINE == docker ]]; then
		docker compose -p "$CT_PROJECT" -f compose.yaml config -q >"$out" 2>&1 ||
			ct_die "docker compose config rejects compose.yaml:"$'\n'"$(cat "$out")"
		ct_note "docker compose config accepts compose.yaml"
	elif command -v docker-compose >/dev/null; then
		# podman-compose has no config command; docker-compose (v1 or v2) checks the file.
		docker-compose -p "$CT_PROJECT" -f compose.yaml config -q >"$out" 2>&1 ||
			ct_die "docker-compose config rejects compose.yaml:"$'\n'"$(cat "$out")"
		ct_note "docker-compose config accepts compose.yaml ($(docker-compose version --short 2>/dev/null))"
	else
		ct_say "podman-compose has no config command and docker-compose is missing: compose.yaml is checked by using it"
	fi
}

ct_build_image() {
	local t=$SECONDS
	if [[ $CT_ENGINE == podman ]]; then
		# --pull=never: the base images come from local storage (a machine without registry
		# access has them there under the upstream names).
		podman build --pull=never -t "$CT_IMAGE" -f Dockerfile . >"$CT_TMP/build.log" 2>&1 ||
			ct_die "podman build failed:"$'\n'"$(tail -n 30 "$CT_TMP/build.log")"
	else
		docker build -t "$CT_IMAGE" -f Dockerfile . >"$CT_TMP/build.log" 2>&1 ||
			ct_die "docker build failed:"$'\n'"$(tail -n 30 "$CT_TMP/build.log")"
	fi
	local size user
	size=$("$CT_ENGINE" image inspect -f '{{.Size}}' "$CT_IMAGE")
	user=$("$CT_ENGINE" image inspect -f '{{.Config.User}}' "$CT_IMAGE")
	[[ $user == 65532:65532 ]] || ct_die "the image runs as '$user', not as nonroot 65532:65532"
	ct_note "image built in $((SECONDS - t)) s: $(awk -v b="$size" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'), user $user"
}

ct_up() {
	ct_compose up -d --no-build postgres server processor ||
		ct_die "compose up failed:"$'\n'"$(tail -n 30 "$CT_TMP/compose.log")"
}

ct_wait_healthy() {
	local t=$SECONDS pg
	pg=$(ct_cid postgres)
	[[ -n $pg ]] || ct_die "no postgres container:"$'\n'"$(tail -n 30 "$CT_TMP/compose.log")"
	# compose.yaml's healthcheck, run by the check itself: podman runs healthchecks only
	# from systemd timers, and the server and processor images have no shell to run one.
	ct_poll 120 'pg_isready in the postgres container' \
		"$CT_ENGINE" exec "$pg" pg_isready -h 127.0.0.1 -U postgres -d finonex
	ct_poll 60 "the server's /healthz" ct_http "$CT_PORT" /healthz
	ct_poll 60 "the server's /readyz (events file writable, PostgreSQL answering)" ct_http "$CT_PORT" /readyz
	ct_poll 60 "the processor's /readyz" ct_http "$CT_PROCESSOR_PORT" /readyz
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$CT_PORT/userEvents/user1")
	[[ $code == 401 ]] || ct_die "GET without the secret answered $code, not 401"
	ct_note "healthy in $((SECONDS - t)) s: pg_isready, server /healthz and /readyz, processor /readyz; no secret: 401"
}

# ct_run_client NAME ARGS...: runs the client service once, detached, as container NAME
# (without starting its dependencies again).
ct_run_client() {
	local name=$1
	shift
	ct_compose "${CT_EXTRA_FILES[@]}" run -d -T --no-deps --name "$name" client "$@" ||
		ct_die "compose run client failed:"$'\n'"$(tail -n 30 "$CT_TMP/compose.log")"
	ct_poll 30 "the client container $name to exist" "$CT_ENGINE" inspect "$name"
}

# ct_wait_client NAME: waits for the client container NAME to end, keeps its log, removes it,
# and fails unless it exited 0.
ct_wait_client() {
	local name=$1 code
	code=$(ct_limit 360 "$CT_ENGINE" wait "$name" 2>/dev/null | tail -n 1) || code='(did not end within 360 s)'
	"$CT_ENGINE" logs "$name" >"$CT_TMP/$name.log" 2>&1 || true
	"$CT_ENGINE" rm -f -v "$name" >/dev/null 2>&1 || true
	[[ $code == 0 ]] || ct_die "client $name exited with status $code:"$'\n'"$(tail -n 20 "$CT_TMP/$name.log")"
}

ct_send_bundled() {
	local t=$SECONDS name="$CT_PROJECT-client-bundled"
	CT_EXTRA_FILES=()
	ct_totals events.jsonl >"$CT_TMP/bundled.totals"
	ct_run_client "$name"
	ct_wait_client "$name"
	ct_note "client service sent the bundled events.jsonl ($(wc -l <events.jsonl) lines), exit 0"
	ct_wait_totals "$CT_TMP/bundled.totals" 'bundled events'
	CT_NOTES[-1]+=" ($((SECONDS - t)) s)"
}

# ct_accepted: the server's events_accepted counter.
ct_accepted() {
	ct_http "$CT_PORT" /debug/vars -H "Authorization: $CT_SECRET" 2>/dev/null |
		grep -o '"events_accepted": *[0-9]*' | grep -o '[0-9]*$'
}

# ct_past N: whether the server has accepted at least N events.
ct_past() {
	local n
	n=$(ct_accepted) && [[ -n $n ]] && ((n >= $1))
}

ct_sigkill_mid_send() {
	local t=$SECONDS name="$CT_PROJECT-client-load" server
	# A file of known totals: CT_EVENTS events over CT_USERS users named load1, load2...
	CT_SEED=${FINONEX_SEED:-$RANDOM$RANDOM}
	awk -v n="$CT_EVENTS" -v users="$CT_USERS" -v seed="$CT_SEED" 'BEGIN {
		srand(seed)
		for (i = 0; i < n; i++) {
			name = rand() < 0.7 ? "add_revenue" : "subtract_revenue"
			printf "{\"userId\": \"load%d\", \"name\": \"%s\", \"value\": %d}\n", i % users + 1, name, int(rand() * 1000)
		}
	}' >"$CT_TMP/load.jsonl"
	chmod 644 "$CT_TMP/load.jsonl"
	ct_totals "$CT_TMP/load.jsonl" >"$CT_TMP/load.totals"
	cat >"$CT_TMP/compose.load.yaml" <<-EOF
		services:
		  client:
		    volumes:
		      - $CT_TMP/load.jsonl:/events/load.jsonl:ro
	EOF
	CT_EXTRA_FILES=(-f "$CT_TMP/compose.load.yaml")
	local before
	before=$(ct_accepted) || ct_die "cannot read the server's /debug/vars"
	ct_run_client "$name" client -file /events/load.jsonl -concurrency "$CT_CONCURRENCY"
	ct_say "sending $CT_EVENTS generated events over $CT_USERS users (FINONEX_SEED=$CT_SEED makes the same file)"

	# Kill once a quarter of the file is acknowledged, while the client still sends.
	ct_poll 120 "the server to accept a quarter of the load" ct_past $((before + CT_EVENTS / 4))
	ct_running "$name" || ct_die "the client finished before the server could be killed mid-send; raise CT_EVENTS"
	server=$(ct_cid server)
	local at started t_kill how
	at=$(ct_accepted) || at=$before
	started=$("$CT_ENGINE" inspect -f '{{.State.StartedAt}}' "$server")
	t_kill=$SECONDS
	if ct_kill_process "$server"; then
		# A crash, as the engine sees it: restart: unless-stopped brings the server back.
		if ct_wait 30 ct_restarted "$server" "$started"; then
			how="its process got SIGKILL (a crash); the restart policy started it again in $((SECONDS - t_kill)) s"
		else
			"$CT_ENGINE" start "$server" >/dev/null
			how="its process got SIGKILL (a crash); the restart policy did not restart it within 30 s, the check did"
		fi
	else
		# The process is out of reach (an engine in a VM): kill the container through the
		# engine, which then counts it as stopped on purpose, and start it, as an operator would.
		"$CT_ENGINE" kill -s KILL "$server" >/dev/null
		ct_poll 30 'the killed server container to stop' ct_not_running "$server"
		"$CT_ENGINE" start "$server" >/dev/null
		how="the container got SIGKILL through the engine; the check started it again"
	fi
	ct_running "$name" || ct_die "the client ended as the server was killed, instead of riding out the restart"
	ct_note "SIGKILL mid-send, after $((at - before)) of $CT_EVENTS events were acknowledged: $how"
	ct_poll 60 "the restarted server's /healthz" ct_http "$CT_PORT" /healthz
	ct_wait_client "$name"
	local retried
	retried=$(grep -io '[0-9]* retr[a-z]*' "$CT_TMP/$name.log" | tail -n 1) || true
	ct_note "client rode out the restart and exited 0${retried:+ (summary: $retried)}"
	ct_wait_totals "$CT_TMP/load.totals" "after SIGKILL mid-send: $CT_EVENTS events"
	CT_NOTES[-1]+=" ($((SECONDS - t)) s)"
	ct_check_totals "$CT_TMP/bundled.totals" ||
		ct_die "the bundled users' revenue changed:"$'\n'"$(cat "$CT_TMP/mismatches")"
}

ct_not_running() { ! ct_running "$1"; }

# ct_restarted CONTAINER STARTED: whether it runs again, started after STARTED.
ct_restarted() {
	ct_running "$1" && [[ $("$CT_ENGINE" inspect -f '{{.State.StartedAt}}' "$1") != "$2" ]]
}

# ct_kill_process CONTAINER: SIGKILL to the container's main process from this machine, when
# that process is visible here and its cgroup names the container (so that a PID from an
# engine's VM never hits an unrelated local process).
ct_kill_process() {
	local id pid
	id=$("$CT_ENGINE" inspect -f '{{.Id}}' "$1") || return 1
	pid=$("$CT_ENGINE" inspect -f '{{.State.Pid}}' "$1") || return 1
	[[ $pid =~ ^[1-9][0-9]*$ ]] || return 1
	grep -qF "$id" "/proc/$pid/cgroup" 2>/dev/null || return 1
	kill -KILL "$pid" 2>/dev/null
}

ct_stop_clean() {
	local t=$SECONDS c id code took
	local -A ids=([server]=$(ct_cid server) [processor]=$(ct_cid processor))
	# As `compose down` does: SIGTERM, then SIGKILL after the grace (10 s).
	ct_compose stop processor server || ct_die "compose stop failed:"$'\n'"$(tail -n 30 "$CT_TMP/compose.log")"
	took=$((SECONDS - t))
	for c in server processor; do
		id=${ids[$c]}
		code=$("$CT_ENGINE" inspect -f '{{.State.ExitCode}}' "$id")
		"$CT_ENGINE" logs "$id" >"$CT_TMP/$c.log" 2>&1 || true
		[[ $code == 0 ]] || ct_die "the $c exited with status $code on SIGTERM (137: killed after the grace):"$'\n'"$(tail -n 20 "$CT_TMP/$c.log")"
	done
	((took < 10)) || ct_die "stopping the server and the processor took $took s, not under the 10 s grace"
	ct_note "server and processor stopped on SIGTERM in ${took} s, both exit 0"
}

# ct_cleanup: on every exit. Keeps the container logs of a failed run, removes the project,
# checks that nothing of it is left, and prints the summary.
ct_cleanup() {
	local rc=$?
	set +eu
	trap - INT TERM
	exec 1>&8 2>&9
	if [[ -n $CT_ENGINE && -n $CT_PROJECT && -d $CT_TMP ]]; then
		((rc == 0)) || ct_save_logs
		ct_say "removing project $CT_PROJECT"
		ct_remove_project
		local left
		left=$(ct_leftovers)
		if [[ -n $left ]]; then
			printf 'containers: left behind after cleanup:\n%s\n' "$left" >&2
			CT_FAIL+="${CT_FAIL:+; }left behind: $(tr '\n' ' ' <<<"$left")"
			rc=1
		else
			CT_NOTES+=("removed: no container, volume or network of $CT_PROJECT is left")
		fi
	fi
	if ((rc == 0 && CT_PASSED != 1)); then rc=1; fi
	ct_summary "$rc"
	exit "$rc"
}

# ct_save_logs: each container's log into the work directory, before they are removed.
ct_save_logs() {
	local id cname
	for id in $(ct_ids 2>/dev/null); do
		cname=$("$CT_ENGINE" inspect -f '{{.Name}}' "$id" 2>/dev/null | tr -d /)
		"$CT_ENGINE" logs --tail 200 "$id" >"$CT_TMP/container-${cname:-$id}.log" 2>&1
	done
}

# ct_remove_project: compose down -v, then what compose may leave: the one-off client
# containers, podman-compose's network, and the image tag.
ct_remove_project() {
	local id
	if [[ $CT_ENGINE == docker ]]; then
		ct_compose down -v --remove-orphans -t 10
	else
		ct_compose down -v -t 10 # podman-compose 1.0 has no --remove-orphans
	fi
	for id in $(ct_ids 2>/dev/null); do
		"$CT_ENGINE" rm -f -v "$id" >/dev/null 2>&1
	done
	for id in $("$CT_ENGINE" volume ls -q 2>/dev/null | grep -F "$CT_PROJECT"); do
		"$CT_ENGINE" volume rm -f "$id" >/dev/null 2>&1
	done
	for id in $("$CT_ENGINE" network ls --format '{{.Name}}' 2>/dev/null | grep -F "$CT_PROJECT"); do
		"$CT_ENGINE" network rm "$id" >/dev/null 2>&1
	done
	"$CT_ENGINE" rmi "$CT_IMAGE" >/dev/null 2>&1
}

# ct_leftovers: the containers, volumes and networks of the project that still exist. New
# anonymous volumes (no project in their name; this project makes none) only get a warning:
# another user of the engine may have made them.
ct_leftovers() {
	{
		"$CT_ENGINE" ps -a --format '{{.Names}}'
		"$CT_ENGINE" volume ls -q
		"$CT_ENGINE" network ls --format '{{.Name}}'
	} 2>/dev/null | grep -F "$CT_PROJECT"
	"$CT_ENGINE" volume ls -q --filter "label=com.docker.compose.project=$CT_PROJECT" 2>/dev/null
	local anon
	anon=$("$CT_ENGINE" volume ls -q 2>/dev/null | grep -E '^[0-9a-f]{64}$' | grep -vxFf "$CT_TMP/volumes.before")
	if [[ -n $anon ]]; then
		printf 'containers: warning: new anonymous volumes (not named for this project):\n%s\n' "$anon" >&2
	fi
	return 0
}

# ct_summary STATUS: what passed, or where and why it failed, and where the logs are.
ct_summary() {
	local line
	if (($1 == 0)); then
		printf '\n==> containers check: PASSED\n'
	else
		printf '\n==> containers check: FAILED at: %s\n' "${CT_STEP:-start}"
		[[ -z ${CT_FAIL:-} ]] || printf '    why: %s\n' "$CT_FAIL"
	fi
	for line in "${CT_NOTES[@]}"; do printf '    %s\n' "$line"; done
	printf '    total time: %d s\n' $((SECONDS - ${CT_T0:-0}))
	if [[ -n ${CT_TMP:-} && -d $CT_TMP ]]; then
		if (($1 != 0)) || [[ ${KEEP:-} == 1 ]]; then
			local f logs=()
			for f in "$CT_TMP"/*.log; do [[ -e $f ]] && logs+=("${f##*/}"); done
			printf '    logs kept in %s: %s\n' "$CT_TMP" "${logs[*]}"
		else
			rm -rf "$CT_TMP"
		fi
	fi
}

# Run directly (bash .ci/containers.sh) rather than sourced by run_test.sh.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	mode_containers "$@"
fi
