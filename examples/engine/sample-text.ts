/** The example's input: a passage repeated, so that the word count has something to count. */
const PASSAGE = `It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness, it was the spring of hope,
it was the winter of despair, we had everything before us, we had nothing before us,
we were all going direct to Heaven, we were all going direct the other way`

export function sampleText(repeat = 200): string {
  return Array.from({ length: repeat }, () => PASSAGE).join('\n')
}
