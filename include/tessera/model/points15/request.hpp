// SPDX-License-Identifier: Apache-2.0
// A POINTS1.5 request: chat messages whose content items are text or images (a file, encoded bytes
// or decoded pixels), and the prompt text WePOINTS' construct_prompt + apply_chat_template build
// from them (spec section 5.1): per image item <|vision_start|>, N x <|image_pad|>,
// <|vision_end|>, "\n"; text items verbatim; ChatML turns without a system prompt.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/image.hpp>
#include <tessera/text/chat_template.hpp>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tessera::model {

/// Where an image item's pixels come from.
using image_source = std::variant<std::filesystem::path,                // a file, decoded by io::load_image
                                  std::shared_ptr<std::vector<std::byte> const>,  // encoded bytes (PNG, JPEG, ...)
                                  std::shared_ptr<io::rgb_image const>>;         // decoded RGB pixels

/// One content item of a message: text, or an image.
struct content_item {
  enum class kind { text, image };
  kind type = kind::text;
  std::string text;     ///< the text (type text)
  image_source image;   ///< the image (type image)

  [[nodiscard]] static content_item make_text(std::string t) { return {kind::text, std::move(t), {}}; }
  [[nodiscard]] static content_item image_file(std::filesystem::path p) { return {kind::image, {}, std::move(p)}; }
  [[nodiscard]] static content_item image_bytes(std::vector<std::byte> bytes) {
    return {kind::image, {}, std::make_shared<std::vector<std::byte> const>(std::move(bytes))};
  }
  [[nodiscard]] static content_item image_pixels(io::rgb_image img) {
    return {kind::image, {}, std::make_shared<io::rgb_image const>(std::move(img))};
  }
  [[nodiscard]] bool is_image() const noexcept { return type == kind::image; }
};

/// One chat turn: role "user" or "assistant" (POINTS1.5's template has no system prompt; a
/// "system" message is rendered as a ChatML system turn, which the reference never produces).
struct chat_turn {
  std::string role;
  std::vector<content_item> content;
};

/// A whole request: the conversation so far, ending with the user's turn to be answered.
struct points15_request {
  std::vector<chat_turn> messages;

  /// A one-turn request: the images (files), then the question, as POINTS1.5's examples build it.
  [[nodiscard]] static points15_request ask(std::string question, std::vector<std::filesystem::path> const& images = {}) {
    chat_turn t{"user", {}};
    for (auto const& p : images) t.content.push_back(content_item::image_file(p));
    t.content.push_back(content_item::make_text(std::move(question)));
    return {{std::move(t)}};
  }
  /// The image items of every message, in prompt order.
  [[nodiscard]] std::vector<content_item const*> images() const {
    std::vector<content_item const*> out;
    for (chat_turn const& m : messages)
      for (content_item const& c : m.content)
        if (c.is_image()) out.push_back(&c);
    return out;
  }
};

/// The special-token text POINTS1.5 writes for one image of `n_tokens` LLM rows.
[[nodiscard]] inline std::string points15_image_text(std::size_t n_tokens) {
  std::string s = "<|vision_start|>";
  s.reserve(s.size() + n_tokens * 13 + 16);
  for (std::size_t i = 0; i < n_tokens; ++i) s += "<|image_pad|>";
  return s + "<|vision_end|>\n";
}

/// The prompt text of `request` (spec 5.1): image item i becomes points15_image_text(
/// image_tokens[i]), text items are inserted verbatim, then the POINTS1.5 chat template (no system
/// prompt, generation prompt appended). Throws tessera::error for an empty conversation, an
/// unknown role, a conversation that does not end with a user turn, or an image count that
/// differs from image_tokens.size().
[[nodiscard]] inline std::string render_points15_prompt(points15_request const& request,
                                                        std::span<std::size_t const> image_tokens) {
  TESSERA_CHECK(!request.messages.empty(), "model::points15: the request has no messages");
  TESSERA_CHECK(request.messages.back().role == "user", "model::points15: the last message has role '",
                request.messages.back().role, "'; a request ends with the user turn to answer");
  std::vector<text::chat_message> turns;
  turns.reserve(request.messages.size());
  std::size_t image = 0;
  for (chat_turn const& m : request.messages) {
    std::string content;
    for (content_item const& c : m.content) {
      if (!c.is_image()) {
        content += c.text;
        continue;
      }
      TESSERA_CHECK(image < image_tokens.size(), "model::points15: the request has more images than the ",
                    image_tokens.size(), " token counts given");
      content += points15_image_text(image_tokens[image++]);
    }
    turns.push_back({m.role, std::move(content)});
  }
  TESSERA_CHECK(image == image_tokens.size(), "model::points15: the request has ", image, " images but ",
                image_tokens.size(), " token counts were given");
  return text::chat_template::points15().render(turns, true);
}

}  // namespace tessera::model
