// Package yamlnode walks a YAML document (a CloudFormation template) node
// by node, keeping each value's tag (!Ref, !If, …), which decoding into Go
// values would lose.
package yamlnode

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Node is a YAML node; the zero Node stands for a missing one.
type Node struct{ *yaml.Node }

// Parse reads a YAML document and returns its top node.
func Parse(raw []byte) (Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return Node{}, err
	}
	if len(doc.Content) == 0 {
		return Node{}, fmt.Errorf("empty document")
	}
	return Node{doc.Content[0]}, nil
}

// At walks mapping keys; it returns the zero Node when a key is missing.
func (n Node) At(path ...string) Node {
	for _, key := range path {
		if n.Node == nil || n.Kind != yaml.MappingNode {
			return Node{}
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = Node{next}
	}
	return n
}

// OK reports whether the node exists.
func (n Node) OK() bool { return n.Node != nil }

// Str is a scalar's value, "" for a missing node.
func (n Node) Str() string {
	if n.Node == nil {
		return ""
	}
	return n.Value
}

// Keys are a mapping's keys, in order.
func (n Node) Keys() []string {
	var keys []string
	if n.Node != nil && n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, n.Content[i].Value)
		}
	}
	return keys
}

// Items are a sequence's items.
func (n Node) Items() []Node {
	var items []Node
	if n.Node != nil && n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			items = append(items, Node{c})
		}
	}
	return items
}

// Strs are a sequence's scalar values.
func (n Node) Strs() []string {
	var s []string
	for _, i := range n.Items() {
		s = append(s, i.Value)
	}
	return s
}

// Walk visits n and every node below it.
func (n Node) Walk(visit func(Node)) {
	if n.Node == nil {
		return
	}
	visit(n)
	for _, c := range n.Content {
		Node{c}.Walk(visit)
	}
}
