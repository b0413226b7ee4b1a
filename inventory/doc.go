// Package inventory reads the hosts a fleet rollout targets: inventories in
// Ansible's YAML shape (all/children/hosts, group and host vars, host ranges
// such as web[01:20]), in Ansible's INI format, and the JSON printed by
// `ansible-inventory --list`, so that existing inventories work as they are. It resolves each host's
// connection settings (ansible_host, ansible_port, ansible_user) and
// variables with Ansible's precedence, and selects hosts with Ansible's
// --limit patterns ([Inventory.Select]).
//
// The package owns parsing and selection only. It never connects anywhere
// and never reads controller settings (those are viper's, in fleet/cli).
// Host and group names keep their case and dots: they are never used as
// viper keys.
//
// Every problem in an inventory is reported, joined with [errors.Join];
// each is a [*SyntaxError] carrying the line where it is known. Hostile
// input gives an error, never a panic or an unbounded allocation.
package inventory
