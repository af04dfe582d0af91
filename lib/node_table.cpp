// The tree of inodes the kernel holds: see node_table.h.
#include "node_table.h"

#include <algorithm>

namespace lfs {

NodeTable::NodeTable() : root_(std::make_unique<Node>(1)) {
  root_->lookups = 1;  // the kernel never forgets the root
}

NodeTable::~NodeTable() {
  // Free depth-first without recursion limits.
  std::vector<Node*> stack{root_.get()};
  std::vector<Node*> all;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& [name, child] : n->children) {
      stack.push_back(child);
      all.push_back(child);
    }
  }
  for (Node* n : all) delete n;
}

Node* NodeTable::insert_locked(Node* parent, const std::string& name) {
  auto it = parent->children.find(name);
  if (it != parent->children.end()) return it->second;
  auto* child = new Node(next_serial_++);
  child->parent = parent;
  child->name = name;
  parent->children.emplace(name, child);
  ++count_;
  return child;
}

void NodeTable::forget(Node* node, uint64_t n) {
  std::lock_guard lock(mu_);
  node->lookups -= std::min(n, node->lookups);
  while (node != root_.get() && node->lookups == 0 && node->children.empty()) {
    Node* parent = node->parent;
    auto it = parent->children.find(node->name);
    if (it != parent->children.end() && it->second == node)
      parent->children.erase(it);
    delete node;
    --count_;
    node = parent;
  }
}

std::pair<Node*, std::string> NodeTable::parent_and_name(Node* node) const {
  std::lock_guard lock(mu_);
  return {node->parent, node->name};
}

std::vector<std::pair<uint64_t, std::string>> NodeTable::chain(
    Node* node) const {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::lock_guard lock(mu_);
  for (Node* n = node; n && n != root_.get(); n = n->parent)
    out.emplace_back(n->serial, n->name);
  std::reverse(out.begin(), out.end());
  return out;
}

size_t NodeTable::size() const {
  std::lock_guard lock(mu_);
  return count_;
}

NodeView view_of(const Node& node) {
  std::lock_guard lock(node.mu);
  return NodeView{node.layer, node.type, node.ino, node.dir_layers};
}

}  // namespace lfs
