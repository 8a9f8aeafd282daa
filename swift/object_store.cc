#include "swift/object_store.h"

namespace swift {

base::Status ObjectStore::Put(const std::string& container, const std::string& object,
                              const std::string& data) {
  auto buf = std::make_shared<base::AppendBuffer>();
  buf->Append(data);
  buf->Close();
  return PutStream(container, object, buf);
}

}  // namespace swift
