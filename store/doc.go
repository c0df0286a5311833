// Package store is the one persistence layer of Annals: Results, Records,
// annotations and logs on PostgreSQL (production) or embedded SQLite (the
// zero-setup default), through bun. Every SQL statement of the project lives
// here; other packages call the methods of *Store and never see a query.
package store
