// The inodes the kernel currently holds, as a tree of names.
//
// A Node stands for one merged name; the kernel refers to it by its address
// (the FUSE node id) and counts lookups on it. A node lives while the kernel
// holds it or while it has live children, so memory follows what the kernel
// caches and is returned on forget. Nodes keep no fds: a directory's fd in a
// layer is reopened from its parent's (through DirFdCache) when needed.
//
// Locking: NodeTable::mu_ guards the tree shape (parent, name, children,
// lookup counts) and must be acquired before any Node::mu. Node::mu guards
// that node's resolution (layers, type, cached listing).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "merge.h"

namespace lfs {

struct Node {
  const uint64_t serial;  // never reused; keys the fd cache

  // Guarded by NodeTable::mu_.
  Node* parent = nullptr;  // of the primary name; null for the root or
  std::string name;        // once the last name is gone (detached)
  std::vector<std::pair<Node*, std::string>> aliases;  // further hard links
  uint64_t lookups = 0;
  std::unordered_map<std::string, Node*> children;

  // Guarded by mu.
  mutable std::mutex mu;
  unsigned layer = 0;                 // topmost layer holding the name
  mode_t type = 0;                    // S_IFMT bits
  uint64_t ino = 0;                   // st_ino as shown by the mount
  std::vector<DirLayer> dir_layers;   // directories: every merged layer
  std::optional<DataRef> data;        // metadata-only file: where its data is
  std::shared_ptr<const std::vector<MergedEntry>> listing;  // cached readdir
  uint64_t listing_gen = 0;  // bumped by every change to the directory
  bool unlinked = false;            // its last name was removed
  std::weak_ptr<const Fd> open_fd;  // the latest open file, for fstat once unlinked

  std::mutex copy_up_mu;  // serialises copy-up of this node; before mu
  std::mutex size_mu;     // under a quota: serialises changes of its size

  // A regular file's data end in the upper once known (-1 before), so that
  // a write past it counts as growth (see growth_table.h). Lock-free.
  std::atomic<int64_t> data_end{-1};

  explicit Node(uint64_t s) : serial(s) {}

  // The directory changed: its cached listing is stale. Needs mu.
  void drop_listing() {
    listing.reset();
    ++listing_gen;
  }
};

// A consistent copy of a node's resolution, taken under its lock.
struct NodeView {
  unsigned layer;
  mode_t type;
  uint64_t ino;
  std::vector<DirLayer> dir_layers;
  std::optional<DataRef> data;  // metadata-only: the data lies there
};

class NodeTable {
 public:
  NodeTable();
  ~NodeTable();
  NodeTable(const NodeTable&) = delete;
  NodeTable& operator=(const NodeTable&) = delete;

  Node* root() { return root_.get(); }

  // Returns the child `name` of `parent` with one more lookup counted,
  // creating it (with `init` applied under its lock) if the table has none.
  // An existing child is refreshed with `init` as well.
  template <class Init>
  Node* acquire_child(Node* parent, const std::string& name, Init&& init);

  // Drops `n` lookups; frees the node (and childless ancestors) at zero.
  void forget(Node* node, uint64_t n);

  // The node the table holds for parent/name, or null (no lookup counted).
  Node* child(Node* parent, const std::string& name) const;
  // Gives `node` one more name (a hard link) and counts one lookup.
  void add_link(Node* node, Node* parent, const std::string& name);
  // The name parent/name is gone; a node left with no name is marked
  // unlinked (and freed if the kernel no longer holds it).
  void remove_name(Node* parent, const std::string& name);
  // parent/name now names what old_parent/old_name named; a node that had
  // the new name loses it.
  void move(Node* old_parent, const std::string& old_name, Node* parent,
            const std::string& name);
  // The two names swap their nodes.
  void exchange(Node* p1, const std::string& n1, Node* p2,
                const std::string& n2);

  // The node's parent and name, read consistently. Root: {nullptr, ""}.
  std::pair<Node*, std::string> parent_and_name(Node* node) const;


  size_t size() const;

 private:
  Node* insert_locked(Node* parent, const std::string& name);
  Node* remove_name_locked(Node* parent, const std::string& name);
  void attach_locked(Node* node, Node* parent, const std::string& name);
  void collect_locked(Node* node);

  mutable std::mutex mu_;  // tree shape; acquired before any Node::mu
  std::unique_ptr<Node> root_;
  uint64_t next_serial_ = 2;
  std::unordered_set<Node*> live_;  // every node but the root
};

template <class Init>
Node* NodeTable::acquire_child(Node* parent, const std::string& name,
                               Init&& init) {
  std::lock_guard lock(mu_);
  Node* child = insert_locked(parent, name);
  ++child->lookups;
  std::lock_guard node_lock(child->mu);
  init(*child);
  return child;
}

NodeView view_of(const Node& node);

}  // namespace lfs
