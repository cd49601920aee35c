// Package testbed holds the tests that need root: real kernel TUNs in
// network namespaces built by scripts/testbed.sh, with real applications
// (ping, iperf3) as traffic. They skip themselves without root, unless
// MIP6_REQUIRE_ROOT_TESTS=1 (as .ci/run sets), in which case a missing
// privilege or tool fails them instead.
package testbed
