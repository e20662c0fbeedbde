// Package tests holds hw-agent's end-to-end tests. They build the real
// binary, run it as a child process against real databases and a real HTTP
// app, and check the repository's project files (config.example.toml, the
// Dockerfile) against the code, so neither can drift from what ships.
package tests
