// Package drivertest tests store/sqlstore on real databases: SQLite
// through modernc.org/sqlite and PostgreSQL (a throwaway cluster on
// loopback) through pgx's stdlib, and a fleet of processes sharing them.
// It is a module of its own so that the SDK's users never download the
// drivers.
package drivertest
