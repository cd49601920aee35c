#!/usr/bin/env bash
# Calls under loss: the loss test matrix of issue 16. For each loss rate
# (applied on every underlay hop of the lab's fig4 topology, in both
# directions) and each scheme, mobile nodes are moved and re-registered,
# then calls are placed in batches; each call talks, its caller moves to
# the neighbouring access router mid-call, and talks again. Printed per
# point: time to re-register after the move, calls set up, time to set up
# (median, 95th percentile), calls that survived the move (media both ways
# after it), RTP lost, and the reasons of failed calls.
#
# No root needed; one process on loopback UDP. The full matrix (0, 5, 10,
# 20, 30 %, 50 calls per point per scheme) takes about 30 minutes on a
# 2-core machine. Every option is passed to `node sweep calls`:
#
#   scripts/bench-calls.sh [--loss 0,5,10,20,30] [--calls 50] [--batch 10]
#                          [--talk 2s] [--scheme both] [--seed N] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-go.sh
exec go run ./cmd/node sweep calls "$@"
