// Package template holds the tests of template.yaml, the SAM application:
// they parse it as YAML nodes, so that !Ref, !GetAtt, !Sub and !If survive,
// and check what `sam validate` would and what the contract asks beyond it.
package template
