// The tree of inodes the kernel holds: see node_table.h.
#include "node_table.h"

#include <algorithm>
#include <unordered_set>

namespace lfs {

NodeTable::NodeTable() : root_(std::make_unique<Node>(1)) {
  root_->lookups = 1;  // the kernel never forgets the root
}

NodeTable::~NodeTable() {
  // Every node still alive, reachable by a name or not (an unlinked file the
  // kernel still held, a node with hard links), is freed exactly once.
  for (Node* n : live_) delete n;
}

Node* NodeTable::insert_locked(Node* parent, const std::string& name) {
  auto it = parent->children.find(name);
  if (it != parent->children.end()) return it->second;
  auto* child = new Node(next_serial_++);
  child->parent = parent;
  child->name = name;
  parent->children.emplace(name, child);
  live_.insert(child);
  return child;
}

void NodeTable::collect_locked(Node* node) {
  std::vector<Node*> work{node};
  while (!work.empty()) {
    Node* n = work.back();
    work.pop_back();
    if (n == root_.get() || n->lookups != 0 || !n->children.empty()) continue;
    std::vector<std::pair<Node*, std::string>> names = n->aliases;
    if (n->parent) names.emplace_back(n->parent, n->name);
    for (auto& [p, name] : names) {
      auto it = p->children.find(name);
      if (it != p->children.end() && it->second == n) p->children.erase(it);
      work.push_back(p);
    }
    live_.erase(n);
    delete n;
  }
}

void NodeTable::forget(Node* node, uint64_t n) {
  std::lock_guard lock(mu_);
  node->lookups -= std::min(n, node->lookups);
  collect_locked(node);
}

Node* NodeTable::child(Node* parent, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = parent->children.find(name);
  return it == parent->children.end() ? nullptr : it->second;
}

void NodeTable::attach_locked(Node* node, Node* parent, const std::string& name) {
  parent->children[name] = node;
  {
    std::lock_guard node_lock(node->mu);
    node->unlinked = false;
  }
  if (!node->parent) {
    node->parent = parent;
    node->name = name;
  } else {
    node->aliases.emplace_back(parent, name);
  }
}

void NodeTable::add_link(Node* node, Node* parent, const std::string& name) {
  std::lock_guard lock(mu_);
  Node* old = remove_name_locked(parent, name);
  attach_locked(node, parent, name);
  ++node->lookups;
  if (old) collect_locked(old);
}

Node* NodeTable::remove_name_locked(Node* parent, const std::string& name) {
  auto it = parent->children.find(name);
  if (it == parent->children.end()) return nullptr;
  Node* n = it->second;
  parent->children.erase(it);
  if (n->parent == parent && n->name == name) {
    if (n->aliases.empty()) {
      n->parent = nullptr;
      n->name.clear();
      std::lock_guard node_lock(n->mu);
      n->unlinked = true;
    } else {
      n->parent = n->aliases.back().first;
      n->name = n->aliases.back().second;
      n->aliases.pop_back();
    }
  } else {
    auto& a = n->aliases;
    a.erase(std::remove(a.begin(), a.end(), std::make_pair(parent, name)), a.end());
  }
  return n;
}

void NodeTable::remove_name(Node* parent, const std::string& name) {
  std::lock_guard lock(mu_);
  Node* n = remove_name_locked(parent, name);
  if (!n) return;
  collect_locked(n);  // frees it if the kernel holds it no more
  collect_locked(parent);
}

void NodeTable::move(Node* old_parent, const std::string& old_name,
                     Node* parent, const std::string& name) {
  std::lock_guard lock(mu_);
  Node* replaced = remove_name_locked(parent, name);
  Node* moved = remove_name_locked(old_parent, old_name);
  if (moved) attach_locked(moved, parent, name);
  if (replaced) collect_locked(replaced);
  if (moved) collect_locked(old_parent);
}

void NodeTable::exchange(Node* p1, const std::string& n1, Node* p2,
                         const std::string& n2) {
  std::lock_guard lock(mu_);
  Node* a = remove_name_locked(p1, n1);
  Node* b = remove_name_locked(p2, n2);
  if (b) attach_locked(b, p1, n1);
  if (a) attach_locked(a, p2, n2);
}

std::pair<Node*, std::string> NodeTable::parent_and_name(Node* node) const {
  std::lock_guard lock(mu_);
  return {node->parent, node->name};
}

size_t NodeTable::size() const {
  std::lock_guard lock(mu_);
  return live_.size() + 1;  // and the root
}

NodeView view_of(const Node& node) {
  std::lock_guard lock(node.mu);
  return NodeView{node.layer, node.type, node.ino, node.dir_layers, node.data};
}

}  // namespace lfs
