# Dockerfile: one image holding the three programs (server, client, processor), static and
# small, for compose.yaml or any orchestrator. Build it with
#
#   docker build -t finonex .          (or: podman build -t finonex .)
#
# and choose the program with the command: `server` (the default), `processor -watch`,
# `client -url http://server:8000`. Every flag also reads a FINONEX_* variable (`server -h`).

# Build stage: the full Go toolchain; nothing of it reaches the final image.
FROM golang:1.24 AS build
WORKDIR /src
# Modules first, so that a change to the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# Static (no libc: the final image has none), no local paths in the binaries, no symbol table.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ ./server ./client ./processor \
 && mkdir /out/data

# Final stage: distroless static has no shell and no package manager, only CA certificates,
# tzdata and /etc/passwd with the nonroot user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/server /out/client /out/processor /usr/local/bin/
# The demo events (10 lines); `client` sends them when given no -file.
COPY events.jsonl /usr/share/finonex/events.jsonl
# The events directory, owned by nonroot so that a fresh named volume mounted on it (which
# starts as a copy of it) is writable. Server and processor must share it: see compose.yaml.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV FINONEX_EVENTS_FILE=/data/server_events.jsonl \
    FINONEX_FILE=/usr/share/finonex/events.jsonl
EXPOSE 8000
CMD ["server"]
