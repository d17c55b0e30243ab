// Package e2e holds the end-to-end tests and benchmarks of the cloud: the
// whole platform in the test's process (infra/testkit/stacktest), real
// appliances' clients, real SMTP; it has no code of its own.
package e2e
