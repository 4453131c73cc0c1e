console.log('ane');
