package watcher

// LogsUnavailable is exported for the tests of package watcher_test.
var LogsUnavailable = logsUnavailable
