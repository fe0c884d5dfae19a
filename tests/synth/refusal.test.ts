import { describe, expect, it } from 'vitest';
import { findRefusal } from '../../src/synth/refusal.js';

describe('refusal detection', () => {
  it.each([
    // The answer QA found exported as a detail sample.
    ["I'm sorry, but as an AI language model I cannot see images, so I can't describe this picture.", 'apologises and declines'],
    ['I cannot help with that.', 'declines to help'],
    ['I’m sorry, but I can’t view the image you provided.', 'apologises and declines'],
    ['I apologise, but I am unable to analyse images.', 'apologises and declines'],
    ['My apologies, but I cannot provide a description of it.', 'apologises and declines'],
    ['Sorry, I can’t assist with that request.', 'apologises and declines'],
    ['As an AI, I don’t have the ability to see pictures.', 'speaks as an AI'],
    ['As a large language model, I have no eyes to look with.', 'speaks as an AI'],
    ["I'm just an AI language model and my knowledge comes from text.", 'speaks as an AI'],
    ['I CANNOT SEE THE IMAGE.', 'says it cannot see the image'],
    ['I’m not able to see or analyze this photo, but it may show a dog.', 'says it cannot see the image'],
    ["I don't have the ability to view images directly.", 'says it cannot see the image'],
    ['I do not have access to the attached image.', 'says it cannot see the image'],
    ['I am unable to comply.', 'declines to help'],
    ['There is no image attached to your message, so here is a guess.', 'says there is no image'],
    ['Unfortunately, there’s no image.', 'says there is no image'],
    ["You haven't provided an image for me to look at.", 'says there is no image'],
    ['Without seeing the image, it is hard to say, but a dog probably plays in a park.', 'answers without the image'],
    ['Without access to the photos, the best guess is a park scene.', 'answers without the image'],
  ])('rejects %j (%s)', (text, what) => {
    const refusal = findRefusal(text);
    expect(refusal?.code).toBe('refusal');
    expect(refusal?.detail).toMatch(new RegExp(`^${what} \\(".+"\\)$`));
  });

  it.each([
    'The dog cannot reach the ball on the shelf.',
    "A sign reads 'Sorry, we're closed'.",
    // Quoted words belong to the scene, even when they would be a refusal in the model's own voice.
    'A note on the fridge says “I’m sorry, I can’t come tonight,” in blue ink.',
    "A card reading 'I cannot help with that' is pinned to the board.",
    "The boy looks sorry for breaking the vase, and he can't meet his mother's eyes.",
    'The man apologizes to the waiter, who cannot hide his annoyance.',
    'There is no picture on the wall above the sofa, only a clock.',
    'The television is switched off; there is no image on its screen.',
    'I can’t see a cat in this picture, only the dog and the frisbee.',
    "I don't see any photos on the fridge, just magnets.",
    'The robot toy on the shelf is sold as an AI companion for children.',
    'Unfortunately for the cyclist, the rain cannot be avoided on this road.',
    'Without the umbrella, the woman would be soaked; the dogs’ owner cannot keep up.',
    'Describe the image as if to someone who cannot see it.',
  ])('accepts %j', (text) => {
    expect(findRefusal(text)).toBeNull();
  });

  it('quotes what it found, with straight apostrophes, in the detail', () => {
    expect(findRefusal('Well. I can’t help you with that, sadly.')).toEqual({
      code: 'refusal',
      detail: `declines to help ("I can't help you with that")`,
    });
  });
});
