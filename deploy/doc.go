// Package deploy holds deployment files; its test validates them.
package deploy
