// The official JS SDK as an app uses it, pointed at a base URL; prints one JSON line with what it got.
// usage: node client.mjs generate|stream|upload|count BASE_URL MODEL [ARG]   (key in GEMINI_API_KEY)
import { GoogleGenAI } from "@google/genai";

const [mode, baseUrl, model, arg] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey: process.env.GEMINI_API_KEY, httpOptions: { baseUrl } });
const config = { responseModalities: ["IMAGE"], ...(arg && mode !== "upload" ? { imageConfig: { imageSize: arg } } : {}) };

function summary(response) {
  const parts = response.candidates?.[0]?.content?.parts ?? [];
  const headers = response.sdkHttpResponse?.headers ?? {};
  const { sdkHttpResponse, ...body } = response;
  return {
    images: parts.filter((p) => p.inlineData && !p.thought).length,
    thoughtImages: parts.filter((p) => p.inlineData && p.thought).length,
    finishReason: response.candidates?.[0]?.finishReason ?? null,
    servedModel: headers["x-nbmon-served-model"] ?? null,
    route: headers["x-nbmon-route"] ?? null,
    body,
  };
}

async function main() {
  if (mode === "generate") {
    return summary(await ai.models.generateContent({ model, contents: "a banana on a desk", config }));
  }
  if (mode === "stream") {
    const chunks = [];
    for await (const chunk of await ai.models.generateContentStream({ model, contents: "a banana", config })) {
      const { sdkHttpResponse, ...body } = chunk;
      chunks.push(body);
    }
    const images = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []).filter((p) => p.inlineData && !p.thought);
    return { chunks: chunks.length, images: images.length, body: chunks };
  }
  if (mode === "upload") {
    const file = await ai.files.upload({ file: arg, config: { mimeType: "image/png", displayName: "banana" } });
    const fetched = await ai.files.get({ name: file.name });
    return { name: file.name, sizeBytes: file.sizeBytes, state: file.state, fetched: fetched.name };
  }
  throw new Error(`unknown mode ${mode}`);
}

try {
  console.log(JSON.stringify({ ok: await main() }));
} catch (error) {
  console.log(JSON.stringify({ error: { status: error.status ?? null, name: error.name, message: String(error.message).slice(0, 300) } }));
}
