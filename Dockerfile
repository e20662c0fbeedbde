# hw-agent: a static binary on a minimal, non-root base image.
#
#   docker build -t hw-agent .
#   docker run --rm -e HW_DATABASE_URL=postgres://... hw-agent
#
# modernc.org/sqlite is pure Go, so CGO_ENABLED=0 keeps the SQLite backend.

FROM golang:1.26 AS builder
WORKDIR /src
# Modules first, so the download layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /hw-agent ./cmd/hw-agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /hw-agent /hw-agent
USER nonroot
# The agent's API (api.listen). Inside a container, listen beyond loopback:
# HW_API_LISTEN=0.0.0.0:9090, and set HW_API_TOKEN.
EXPOSE 9090
# The embedded SQLite default (sqlite://hammerwork.db) is written to the
# working directory, which the nonroot user owns.
WORKDIR /home/nonroot
ENTRYPOINT ["/hw-agent"]
CMD ["run"]
