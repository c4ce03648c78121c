// Package gittest builds real git repositories for tests with the system git
// CLI: Run runs git in a repository with an isolated configuration (no
// system or global config, HOME set to the repository, a fixed author,
// committer and date), Init and CommitAll make a history, Replace edits a
// work-tree file, and ExampleFleet commits the module's examples/fleet-repo
// and a change to it.
//
// It is for tests only and fails the test on any error. Only SkipWithoutGit
// and ExampleFleet skip a test when git is not installed; Run, Init and
// CommitAll fail it. It does not serve repositories: the tests that need a
// git server start their own.
package gittest
